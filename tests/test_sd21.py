"""The sd21 preset's real architecture (Stable Diffusion 2.1-base UNet and VAE, random weights) on the CPU:
what must hold before a GPU ever runs it (issue 16).

The module's tests share one model and run in file order: upscaling (both engines, SATeCo and frame-wise),
then a training step (which changes the weights).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from media import plain_pyav_mp4

from satecco.build import method_pipeline
from satecco.engine_local import upscale_locally
from satecco.inputs import VideoSettings
from satecco.pipeline import SATeCoPipeline
from satecco.presets import ModelSpec
from satecco.training.stages import STAGE_CLASSES
from satecco.video.read import read_frames

#: one DDIM step from the preset's start (t = 999); the windows' noise comes from the seed
SPEC = ModelSpec(preset="sd21", random_weights=True, steps=1, color_fix="none")
SETTINGS = VideoSettings(codec="ffv1", seed=5)


@pytest.fixture(scope="module")
def sd21_parts():
    """(model, diffusion) of the sd21 preset with seeded random weights, built once (about 20 s, 6.5 GB):
    the weights ``satecco upscale --preset sd21 --random-weights`` builds in every process."""
    from satecco.build import build_model
    from satecco.presets import SD21

    return build_model(SD21, seed=0, diffusion=SPEC.diffusion_overrides())


def sd21_pipeline(parts, spec: ModelSpec, dtype: torch.dtype = torch.float32):
    """What ``build_pipeline(spec)`` gives on the CPU, on the module's model (cast to ``dtype`` in place)."""
    model, diffusion = parts
    return method_pipeline(SATeCoPipeline(model, diffusion, dtype=dtype, color_fix=spec.applied_color_fix), spec)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """6 frames of 16x16: one window of the sd21 preset's smallest frame (64 HR pixels, 8 latent pixels)."""
    return str(plain_pyav_mp4(tmp_path_factory.mktemp("sd21") / "clip.mp4", n=6, height=16, width=16))


@pytest.fixture(scope="module")
def local_outputs(sd21_parts, clip, tmp_path_factory):
    """The in-process engine's fp32 output frames for SATeCo and for the frame-wise method."""
    outputs = {}
    for method in ("satecco", "framewise"):
        spec = replace(SPEC, method=method)
        out = tmp_path_factory.mktemp(method)
        (result,) = upscale_locally([clip], out, sd21_pipeline(sd21_parts, spec), SETTINGS, progress=False)
        assert result.status == "ok", result.error
        outputs[method] = np.stack(list(read_frames(result.output)))
    return outputs


def test_sd21_upscales_end_to_end_in_process(local_outputs):
    """SATeCo and the frame-wise method give 6 frames of 64x64 (x4) that are not flat. With untrained
    adapters TFA's zero-initialised output passes every frame through alone, so the frame-wise method,
    which runs each frame as its own window with that frame's noise, gives SATeCo's frames."""
    for frames in local_outputs.values():
        assert frames.shape == (6, 64, 64, 3)
        assert frames.std() > 5
    assert np.abs(local_outputs["satecco"].astype(int) - local_outputs["framewise"]).max() <= 1


@pytest.mark.usefixtures("ray_local")
def test_sd21_ray_engine_equals_the_in_process_engine(local_outputs, clip, tmp_path):
    """The Ray engine's stage actor builds the same random sd21 weights from the spec and writes the frames
    the in-process engine wrote (up to 1/255 of float rounding between thread counts)."""
    from satecco.pipelines.config import PipelineConfig
    from satecco.pipelines.upscale import upscale_on_ray

    config = PipelineConfig(windows_per_segment=1, decode_cpus=0.25, write_cpus=0.25)
    (result,) = upscale_on_ray([clip], tmp_path, SPEC, SETTINGS, config, progress=False)
    assert result.status == "ok", result.error
    frames = np.stack(list(read_frames(result.output)))
    assert frames.shape == local_outputs["satecco"].shape
    assert np.abs(frames.astype(int) - local_outputs["satecco"]).max() <= 1


def test_sd21_window_runs_in_bfloat16_on_the_meta_device():
    """One sd21 window through every network in bfloat16 on the meta device, whose kernels check dtypes
    as a GPU's do (convolution weights, SFA's statistics, attention inputs, the VAE's scaling), in
    seconds: bf16 kernels on this CPU take minutes for the same window (the tiny preset's bf16 numbers are
    checked on the CPU in tests/test_pipeline.py)."""
    from satecco.build import build_model
    from satecco.pipeline import decode_steps, encode_steps
    from satecco.presets import SD21

    with torch.device("meta"):
        model, _ = build_model(SD21, seed=0)
    model.to(torch.bfloat16)
    lr = torch.empty(1, 6, 3, 16, 16, device="meta", dtype=torch.bfloat16)
    upscaled, latents, features = encode_steps(model, lr)
    guidance = model.latent_encoder(latents)
    noise = model.predict_noise(latents, torch.tensor(999, device="meta"), guidance, 6)
    decoded, refined = decode_steps(model, upscaled, latents - noise, features)
    assert latents.shape == (6, 4, 8, 8) and noise.shape == latents.shape
    assert {t.dtype for t in (upscaled, latents, noise, decoded, refined, *guidance, *features)} == {torch.bfloat16}
    assert refined.shape == (1, 6, 3, 64, 64)


def test_sd21_stage_2_and_3_take_a_step_with_gradient_checkpointing(sd21_parts):
    """One stage-2 and one stage-3 optimiser step of the sd21 architecture at a 64-pixel crop with
    checkpointing on: the backward pass recomputes every guided decoder block's adapter under its guidance,
    every trained parameter gets a finite gradient and the SFA convolutions move. (SGD: AdamW's state for
    stage 2's 743 M adapter parameters, 11 GB, is what docs/training.md budgets on a GPU, not here.)"""
    from satecco.jobs.loop import train_step

    model, diffusion = sd21_parts
    model.enable_gradient_checkpointing()
    generator = torch.Generator().manual_seed(0)
    batch = {"hr": torch.randint(0, 256, (1, 2, 64, 64, 3), generator=generator, dtype=torch.uint8),
             "lr": torch.randint(0, 256, (1, 2, 16, 16, 3), generator=generator, dtype=torch.uint8)}
    for name in ("unet", "vae"):
        stage = STAGE_CLASSES[name](model, diffusion, seed=0)
        adapters = getattr(model, f"{name}_adapters")
        recomputed = []
        adapters.adapt = lambda index, *args, _adapt=adapters.adapt, _log=recomputed: _log.append(index) or _adapt(index, *args)
        sfa_before = [sfa.to_shift.weight.detach().clone() for sfa in adapters.sfa]
        trained = [p for p in stage.parameters() if p.requires_grad]
        forward_calls = len(adapters.sfa)
        loss, _ = train_step(stage, stage, torch.optim.SGD(trained, lr=1.0), batch, step=0)
        del adapters.adapt
        assert torch.isfinite(loss)
        assert sorted(recomputed[forward_calls:]) == list(range(len(adapters.sfa))), name
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained), name
        for before, sfa in zip(sfa_before, adapters.sfa, strict=True):
            assert not torch.equal(before, sfa.to_shift.weight), name
        for p in trained:
            p.grad = None
