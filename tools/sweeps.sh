#!/usr/bin/env bash
# The seed sweeps behind nbs/11_results.ipynb and the README's headline tables (about an hour on 2 cores:
# the two models run side by side with one thread each). Results: $OUT/<model>-<format>/results.{json,md}, report.html.
set -euo pipefail
OUT=${OUT:-sweeps}
ALL="rtn quarot flatquant fair frontier_only reliability_only fair_constant fair_late fair_deployed"
run() { fair-calib --threads 1 --quiet --seeds 0 1 2 --resume "$@"; }
for m in tiny-llada tiny-dream; do
  ( run --model $m --methods $ALL --out $OUT/$m-nf4 && \
    run --model $m --methods rtn quarot flatquant fair --w-format int4 --out $OUT/$m-int4 ) > $OUT.$m.log 2>&1 &
done
wait
