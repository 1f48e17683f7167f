#!/usr/bin/env bash
# Table 3's refiner rows, retrained: stage 4 as the shipped default trained it (configs/train/tiny-refiner.yaml,
# bigbuckbunny plus the 21 panned stills, bikes for the validation curve), once with w = 0 and once with
# w = 1.0 in Eq. 5, each from a fresh refiner on the shipped stages 0-3. Keeps each refiner alone in
# scripts/ablation_variants/refiner-w<W>.safetensors; `make ablation` runs them in place of the shipped one.
# Usage: scripts/train_refiner_w_variants.sh [OUT] [extra `satecco train` options, e.g. --max-steps 2]
set -euo pipefail
OUT=${1:-outputs/refiner-w-variants}
shift || true
source scripts/training_setup.sh
for w in 0 1; do
    # The shipped modules with a fresh (untrained) refiner of this w.
    .venv/bin/python scripts/ablation_weights.py fresh "$OUT/init-w$w.safetensors" refiner --set refiner.weight=$w
    $SATECCO train refiner --config configs/train/tiny-refiner.yaml "${STILL_DATA[@]}" "${COMMON[@]}" \
        --base-model satecco/weights/tiny --weights "$OUT/init-w$w.safetensors" --output "$OUT/refiner-w$w.safetensors" \
        --run-name "refiner-w$w" "$@"
    .venv/bin/python scripts/ablation_weights.py keep refiner "$OUT/refiner-w$w.safetensors" \
        "scripts/ablation_variants/refiner-w$w.safetensors"
done
