#!/usr/bin/env bash
# Copy a trained tiny default (scripts/train_tiny_default.sh OUT) into satecco/weights/tiny/.
set -euo pipefail
OUT=${1:-outputs/tiny-default}
rm -rf satecco/weights/tiny && mkdir -p satecco/weights/tiny
cp -r "$OUT/base/unet" "$OUT/base/vae" "$OUT/base/scheduler" satecco/weights/tiny/
cp "$OUT/refiner.safetensors" satecco/weights/tiny/satecco.safetensors
du -sh satecco/weights/tiny
