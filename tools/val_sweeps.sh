#!/usr/bin/env bash
# Investigating FAIR-Calib vs FlatQuant on the validation split (calibration-split problems 128..255 of each suite,
# never calibrated or probed on), so that no setting is chosen on the test split. Three seeds each:
#   clean   : the defaults (clean calibration sequences, prompt floor 0.1)
#   block   : calibration sequences masked the way block decoding visits them (--calib data=block_mask)
#   floor1  : prompt positions weighted like the window mean (--prior prompt_floor=1.0)
set -euo pipefail
OUT=${OUT:-sweeps}; MODELS=${MODELS:-"tiny-llada tiny-dream"}
run() { fair-calib --threads 1 --quiet --seeds 0 1 2 --eval-split val --limit 128 --n-lag 0 --resume "$@"; }
for m in $MODELS; do
  run --model $m --methods flatquant fair --out $OUT/val-$m-clean
  run --model $m --methods flatquant fair --calib data=block_mask --out $OUT/val-$m-block
  run --model $m --methods fair --prior prompt_floor=1.0 --out $OUT/val-$m-floor1
done
