"""benchmarks/train_memory.py, the per-GPU memory estimate of docs/training.md, on the tiny preset's configs
(meta device, seconds): its counts follow the crop and checkpointing keeps less than it saves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
CONFIGS = BENCHMARKS.parent / "configs" / "train"


@pytest.fixture
def train_memory(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import train_memory

    return train_memory


@pytest.mark.parametrize("stage", ["unet", "vae", "refiner"])
def test_activations_grow_with_the_crop_and_checkpointing_keeps_less(train_memory, stage):
    rows = [train_memory.estimate(stage, str(CONFIGS / f"tiny-{stage}.yaml"), crop, torch.float32) for crop in (32, 64)]
    small, large = rows
    assert 3.0 < large["activations_gib"] / small["activations_gib"] < 4.5  # 4x the pixels
    assert large["trained_parameters_m"] == small["trained_parameters_m"] > 0
    if stage == "refiner":  # no frozen network in its backward pass: nothing to checkpoint
        assert large["activations_checkpointed_gib"] == large["activations_gib"]
    else:
        assert large["activations_checkpointed_gib"] < 0.7 * large["activations_gib"]
