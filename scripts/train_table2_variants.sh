#!/usr/bin/env bash
# The paper's Table 2 rows A-C, retrained (the paper trains a model per row): each row trains, with its
# SFA/TFA switched off (`satecco train --no-sfa/--no-tfa`), the stages its switches change, as the shipped
# default trained them (configs/train/tiny-*.yaml, bigbuckbunny plus the 21 panned stills, bikes for the
# validation curve), on the shipped stages 0-1:
#   C (SFA + TFA in the UNet; none in the VAE decoder): the refiner (stage 4) on the shipped stage-2 modules;
#   A (none anywhere): the refiner;
#   B (SFA in the UNet only): the UNet's adapters and the latent encoder (stage 2), then the refiner.
# Stage 3 is not run: every row switches the VAE decoder's adapters off. Keeps what each row retrained in
# scripts/ablation_variants/table2-<ROW>.safetensors; `make ablation` runs it with the row's switches.
# Usage: scripts/train_table2_variants.sh [OUT] [ROW...]   (rows default to C A B; $TRAIN_OPTIONS, e.g.
# "--max-steps 2", go to every `satecco train`)
set -euo pipefail
OUT=${1:-outputs/table2-variants}
shift || true
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(C A B)
source scripts/training_setup.sh
COMMON+=("${STILL_DATA[@]}" --base-model satecco/weights/tiny ${TRAIN_OPTIONS:-})
OFF_IN_VAE=(--no-sfa vae --no-tfa vae)
for row in "${ROWS[@]}"; do
    case $row in
        A) switches=(--no-sfa unet --no-tfa unet "${OFF_IN_VAE[@]}"); retrained=(refiner) ;;
        B) switches=(--no-tfa unet "${OFF_IN_VAE[@]}"); retrained=(unet_adapters latent_encoder refiner) ;;
        C) switches=("${OFF_IN_VAE[@]}"); retrained=(refiner) ;;
        *) echo "unknown row $row (A, B or C)" >&2; exit 2 ;;
    esac
    weights="$OUT/$row-init.safetensors"
    .venv/bin/python scripts/ablation_weights.py fresh "$weights" "${retrained[@]}"
    if [ "$row" = B ]; then
        $SATECCO train unet --config configs/train/tiny-unet.yaml "${COMMON[@]}" "${switches[@]}" \
            --weights "$weights" --output "$OUT/$row-unet.safetensors" --run-name "table2-$row-unet"
        weights="$OUT/$row-unet.safetensors"
    fi
    $SATECCO train refiner --config configs/train/tiny-refiner.yaml "${COMMON[@]}" "${switches[@]}" \
        --weights "$weights" --output "$OUT/$row-refiner.safetensors" --run-name "table2-$row-refiner"
    .venv/bin/python scripts/ablation_weights.py keep "$(IFS=,; echo "${retrained[*]}")" \
        "$OUT/$row-refiner.safetensors" "scripts/ablation_variants/table2-$row.safetensors"
done
