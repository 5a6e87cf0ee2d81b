#!/usr/bin/env bash
# The whole test suite: the browser it needs (installed if missing), the linter, every notebook (nbdev_test, two at a
# time, one thread each), then the pytest tests of the library (unit, cross-module, CLI, `slow` pipelines and fresh
# processes, `browser` checks in headless Chromium). -rs lists every skipped test with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/ci_setup.sh
ruff check
OMP_NUM_THREADS=1 nbdev_test --n_workers 2 --timing
FAIR_CALIB_THREADS=2 python -m pytest -q -rs tests
