#!/usr/bin/env bash
# Table 3's retrained row: the paper's PixelShuffle upscaler against TMSA. Stage 1 as the shipped default
# trained it (configs/train/tiny-upscaler.yaml, bigbuckbunny plus the 21 panned stills, bikes for the
# validation curve), with the upscaler's TMSA blocks removed (num_blocks 0: 2D convolutions on each frame,
# pixel shuffle x4 and the bicubic skip, no attention and no temporal mixing). Keeps the upscaler alone in
# scripts/ablation_variants/pixelshuffle-upscaler.safetensors, which `make ablation` runs with
# `--method upscaler --weights FILE`.
# Usage: scripts/train_pixelshuffle_upscaler.sh [OUT] [extra `satecco train` options, e.g. --max-steps 2]
set -euo pipefail
OUT=${1:-outputs/pixelshuffle-upscaler}
shift || true
source scripts/training_setup.sh
.venv/bin/python scripts/ablation_weights.py fresh "$OUT/init.safetensors" upscaler --set upscaler.num_blocks=0
$SATECCO train upscaler --config configs/train/tiny-upscaler.yaml "${STILL_DATA[@]}" "${COMMON[@]}" \
    --base-model satecco/weights/tiny --weights "$OUT/init.safetensors" --output "$OUT/upscaler.safetensors" \
    --run-name pixelshuffle-upscaler "$@"
.venv/bin/python scripts/ablation_weights.py keep upscaler "$OUT/upscaler.safetensors" \
    scripts/ablation_variants/pixelshuffle-upscaler.safetensors
