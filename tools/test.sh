#!/usr/bin/env bash
# The whole test suite: the browser it needs (installed if missing), the linter, every notebook (nbdev_test, two at a
# time, one thread each; index.ipynb through tools/check_readme.py, which also checks that it prints what the README
# shows), then the pytest tests of the library (unit, cross-module, CLI, `slow` pipelines and fresh processes,
# `browser` checks in headless Chromium). -rs lists every skipped test with its reason. A failing notebook
# does not stop the pytest run: every part runs, and the script fails if any part failed, naming which.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
bash tools/ci_setup.sh || failed+=(browser-setup)
ruff check || failed+=(ruff)
OMP_NUM_THREADS=1 nbdev_test --n_workers 2 --timing --skip_file_re '^([_.]|index)' || failed+=(notebooks)
OMP_NUM_THREADS=1 python tools/check_readme.py || failed+=(readme)   # executes index.ipynb, compares with the README
FAIR_CALIB_THREADS=2 python -m pytest -q -rs tests || failed+=(pytest)
if [ ${#failed[@]} -gt 0 ]; then echo "tools/test.sh: FAILED: ${failed[*]}" >&2; exit 1; fi
