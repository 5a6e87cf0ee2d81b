#!/usr/bin/env bash
# The whole test suite: every notebook (nbdev_test, two at a time, one thread each) and the pytest tests of the library.
set -euo pipefail
cd "$(dirname "$0")/.."
OMP_NUM_THREADS=1 nbdev_test --n_workers 2 --timing
FAIR_CALIB_THREADS=2 python -m pytest -q tests
