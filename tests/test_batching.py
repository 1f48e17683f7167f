"""--batch: several tiles, of one window or of several, in one forward pass give the output of one tile
at a time (within float rounding), whole or split into the Ray engine's parts, for SATeCo and framewise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from media import textured_frames, write

from satecco.build import build_pipeline
from satecco.cli import main
from satecco.presets import ModelSpec
from satecco.video.read import read_frames

SPEC = ModelSpec(preset="tiny", tile=8, tile_overlap=4)  # the embedded default, 15 tiles on 16x24 frames


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    frames = np.stack(textured_frames(10, 24))[:, :16]
    return np.stack([frames[0:6], frames[4:10]])  # (W, T, h, w, 3)


def unet_batches(pipeline) -> list[int]:
    """The batch size (B·T) of every UNet forward pass that ``pipeline`` runs from now on."""
    sizes: list[int] = []
    pipeline.model.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    return sizes


def test_batched_windows_and_tiles_equal_one_at_a_time(windows):
    single, batched = build_pipeline(SPEC), build_pipeline(replace(SPEC, batch=8))
    assert len(single.prepare(windows[0], 0, 0).boxes) == 15
    sizes = unet_batches(batched)
    one = single.run_windows(windows, [0, 4], seed=3)
    many = batched.run_windows(windows, [0, 4], seed=3)
    assert sizes == [8 * 6] * 3 + [6 * 6]  # 30 tiles of two windows, 8 per pass (x 6 frames), one step each
    for a, b in zip(one, many, strict=True):
        assert np.abs(a["frames"] - b["frames"]).max() < 0.05  # on [0, 255]
    # the Ray engine's split: encode, then denoise, then decode on other actors, batched alike
    latents = batched.run_windows(windows, [0, 4], 3, ("encode",))
    carried = {"latents": np.stack([out["latents"] for out in latents])}
    denoised = batched.run_windows(windows, [0, 4], 3, ("denoise",), carried)
    carried = {"denoised": np.stack([out["denoised"] for out in denoised])}
    split = batched.run_windows(windows, [0, 4], 3, ("decode",), carried)
    for a, b in zip(one, split, strict=True):
        assert np.abs(a["frames"] - b["frames"]).max() < 0.05


def test_framewise_batches_its_frames(windows):
    spec = replace(SPEC, method="framewise", tile=None)
    single, batched = build_pipeline(spec), build_pipeline(replace(spec, batch=4))
    sizes = unet_batches(batched.pipeline)
    a = single.run_window(windows[0], 0, seed=3)["frames"]
    b = batched.run_window(windows[0], 0, seed=3)["frames"]
    assert sizes == [4, 2]  # six one-frame windows, four per pass
    assert np.abs(a - b).max() < 0.05


def test_cli_batch_gives_the_same_video(tmp_path):
    clip = write(tmp_path / "clip.mkv", textured_frames(9, 16), "ffv1")
    common = ["upscale", "--engine", "local", str(clip), "--codec", "ffv1", "--no-progress", "--tile", "8",
              "--tile-overlap", "4"]
    assert main([*common, "-o", str(tmp_path / "one")]) == 0
    assert main([*common, "-o", str(tmp_path / "many"), "--batch", "8"]) == 0
    one, many = (np.stack(list(read_frames(tmp_path / run / "clip.mkv"))).astype(int) for run in ("one", "many"))
    assert np.abs(one - many).max() <= 1  # uint8 rounding of equal floats
