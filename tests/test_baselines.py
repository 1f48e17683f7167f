"""The baselines of `satecco upscale --method`: TFA switched off, frame-wise SATeCo, MATLAB bicubic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import perturb_
from media import moving_frames, write

from satecco.baselines import BicubicUpscaler, FramewisePipeline
from satecco.cli import main
from satecco.metrics.imresize import imresize
from satecco.models.adapters import DecoderAdapters
from satecco.pipeline import SATeCoPipeline
from satecco.presets import ModelSpec
from satecco.video.read import read_frames


def test_without_tfa_no_frame_reaches_another_through_the_adapters():
    torch.manual_seed(0)
    adapters = perturb_(DecoderAdapters(block_channels=(8,), guidance_channels=(8,), head_dim=8,
                                        tfa_kernel_size=(1, 1, 1)), std=0.2)
    frames = 4
    f, g = torch.randn(frames, 8, 16, 16), torch.randn(frames, 8, 16, 16)
    f2 = f.clone()
    f2[2] += torch.randn(8, 16, 16)  # change frame 2 only

    def others_change() -> float:
        return (adapters.adapt(0, f2, g, frames) - adapters.adapt(0, f, g, frames))[[0, 1, 3]].abs().max().item()

    assert others_change() > 1e-3, "with TFA on, a change in frame 2 reaches the other frames"
    with adapters.without_tfa():
        assert others_change() == 0.0
        alone = adapters.adapt(0, f[1:2], g[1:2], 1)
        torch.testing.assert_close(adapters.adapt(0, f, g, frames)[1:2], alone)  # SFA only, per frame
    assert adapters.tfa_enabled and others_change() > 1e-3, "the switch is restored on exit"


@pytest.fixture(scope="module")
def active_pipeline(tiny_parts):
    """The tiny model with every module perturbed, so that TFA and the upscaler's TMSA do mix frames."""
    import copy

    model, diffusion = tiny_parts
    model = copy.deepcopy(model)
    for name in model.trainable_modules():
        perturb_(getattr(model, name), std=0.02, seed=3)
    return SATeCoPipeline(model, diffusion)


def test_framewise_output_of_a_frame_depends_on_that_frame_only(active_pipeline):
    clip = np.stack(moving_frames(n=3, height=16, width=16))
    changed = clip.copy()
    changed[2] = 255 - changed[2]
    framewise = FramewisePipeline(active_pipeline)
    out, out_changed = framewise.upscale_window(clip, 0, seed=5), framewise.upscale_window(changed, 0, seed=5)
    np.testing.assert_array_equal(out[:2], out_changed[:2])
    assert np.abs(out[2] - out_changed[2]).mean() > 1.0
    # frame 1 of the window is frame 1 of the video: the same as a one-frame window at that index
    np.testing.assert_allclose(framewise.upscale_window(clip[1:2], 1, seed=5)[0], out[1], atol=1e-4)
    # the control: SATeCo itself carries the change across the window
    satecco = active_pipeline.upscale_window(clip, 0, seed=5)
    assert np.abs(active_pipeline.upscale_window(changed, 0, seed=5)[0] - satecco[0]).max() > 0.5


def test_framewise_parts_split_and_join_like_the_whole(active_pipeline):
    """The Ray engine may run encode, denoise and decode in different actors: the same frames result."""
    clip = np.stack(moving_frames(n=2, height=16, width=16))
    framewise = FramewisePipeline(active_pipeline)
    latents = framewise.run_window(clip, 4, 1, ("encode",))
    denoised = framewise.run_window(clip, 4, 1, ("denoise",), latents)
    assert denoised["denoised"].shape[:2] == (1, 2)  # (tiles, frames, ...)
    split = framewise.run_window(clip, 4, 1, ("decode",), denoised)["frames"]
    np.testing.assert_allclose(split, framewise.upscale_window(clip, 4, 1), atol=1e-3)


def test_bicubic_is_matlab_imresize_x4():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (2, 9, 13, 3), dtype=np.uint8)
    out = BicubicUpscaler().upscale_window(clip, 0, seed=0)
    assert out.shape == (2, 36, 52, 3) and out.dtype == np.float32
    for frame, up in zip(clip, out, strict=True):
        np.testing.assert_array_equal(up, imresize(frame, 4.0))
    flat = np.full((1, 8, 8, 3), 77, np.uint8)
    np.testing.assert_array_equal(BicubicUpscaler().upscale_window(flat, 0, 0), 77)  # weights sum to one
    assert BicubicUpscaler().run_window(clip, 0, 0, ("encode",))["latents"].shape == (1, 2, 0)


def test_unknown_method_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="'nearest'"):
        ModelSpec(method="nearest")


@pytest.mark.parametrize("method", ["bicubic", "framewise"])
def test_cli_upscale_method(method, tmp_path):
    frames = moving_frames(n=3, height=16, width=16)
    source = write(tmp_path / "clip.mkv", frames, "ffv1")
    out = tmp_path / "out"
    code = main(["upscale", "--engine", "local", "--method", method, "--codec", "ffv1", "--steps", "1",
                 str(source), "-o", str(out), "--no-progress"])
    assert code == 0
    result = np.stack(list(read_frames(out / "clip.mkv")))
    assert result.shape == (3, 64, 64, 3)
    if method == "bicubic":
        np.testing.assert_array_equal(result, np.stack([imresize(f, 4.0) for f in frames]))
