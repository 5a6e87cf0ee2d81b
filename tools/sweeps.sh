#!/usr/bin/env bash
# The seed sweeps behind nbs/11_results.ipynb and the README's tables (about 80 minutes on 2 cores; the two models run
# side by side with one thread each). Results: $OUT/<dir>/results.{json,md} and report.html, copied to
# data/results/sweeps/ by `python tools/collect_sweeps.py $OUT`.
#  <model>-nf4       every method and ablation, NF4 weights, seeds 0-2
#  <model>-int4      RTN, QuaRot, FlatQuant with per-channel int4 weights (FlatQuant's own format)
#  <model>-nf4-block FlatQuant vs FAIR-Calib on block-masked calibration sequences: the test-split confirmation of what
#                    tools/val_sweeps.sh found on the validation split
set -euo pipefail
OUT=${OUT:-sweeps}
ALL="rtn quarot flatquant fair frontier_only reliability_only fair_constant fair_late fair_deployed"
run() { fair-calib --threads 1 --quiet --seeds 0 1 2 --resume "$@"; }
for m in tiny-llada tiny-dream; do
  ( run --model $m --methods $ALL --out $OUT/$m-nf4
    run --model $m --methods rtn quarot flatquant --w-format int4 --out $OUT/$m-int4
    run --model $m --methods flatquant fair --calib data=block_mask --out $OUT/$m-nf4-block ) > $OUT.$m.log 2>&1 &
done
wait
