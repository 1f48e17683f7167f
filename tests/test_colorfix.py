"""Colour correction (--color-fix): what each fix takes from the reference and what it keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from media import textured_frames

from satecco.colorfix import color_fix, color_fix_frames, low_frequencies
from satecco.pipeline import SATeCoPipeline
from satecco.presets import ModelSpec


def _scene(seed: int = 0) -> torch.Tensor:
    """``(2, 3, 64, 64)`` frames in [0, 255]: smooth colour fields plus fine texture."""
    generator = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(2, 3, 4, 4, generator=generator), size=(64, 64), mode="bicubic")
    fine = torch.rand(2, 3, 64, 64, generator=generator) - 0.5
    return 60 + 120 * coarse + 40 * fine


def test_adain_takes_each_frames_channel_mean_and_spread_from_the_reference():
    reference = _scene(0)
    output = 0.7 * _scene(1) + torch.tensor([30.0, -10.0, 5.0])[:, None, None]
    fixed = color_fix(output, reference, "adain")
    torch.testing.assert_close(fixed.mean((2, 3)), reference.mean((2, 3)))
    torch.testing.assert_close(fixed.std((2, 3)), reference.std((2, 3)))
    # the picture is still the output's: a per-channel affine map of it
    assert torch.corrcoef(torch.stack([fixed[0, 0].flatten(), output[0, 0].flatten()]))[0, 1] > 0.999


def test_wavelet_removes_a_colour_cast_and_keeps_the_outputs_detail():
    reference = _scene(0)
    detail = 20 * (torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) - 0.5)  # fine texture
    cast = torch.tensor([25.0, 0.0, -15.0])[:, None, None]  # a colour shift of the kind diffusion SR shows
    fixed = color_fix(reference + cast + detail, reference, "wavelet")
    # the cast and the reference's low band cancel out exactly; of the added texture, its own low band goes
    torch.testing.assert_close(fixed - reference, detail - low_frequencies(detail), atol=1e-3, rtol=0)
    assert (fixed - reference).mean((2, 3)).abs().max() < 0.2
    assert (fixed - reference).std() > 0.9 * detail.std()


def test_none_and_unknown_fixes():
    frames = _scene(0)
    assert color_fix(frames, _scene(1), "none") is frames
    with pytest.raises(ValueError, match="unknown colour fix 'hsv'"):
        color_fix(frames, frames, "hsv")
    with pytest.raises(ValueError, match="unknown colour fix 'hsv'"):
        ModelSpec(color_fix="hsv")
    with pytest.raises(ValueError, match="--color-fix act on SATeCo's diffusion branch.*--method upscaler"):
        ModelSpec(method="upscaler", color_fix="wavelet")


def test_the_pipeline_gives_every_output_frame_the_inputs_colours(tiny_parts):
    """With random weights the tiny pipeline's colours are far from the input's; adain pins each output
    frame's channel means to those of the bicubic-upscaled input, whole frames also when tiled."""
    model, diffusion = tiny_parts
    lr = np.stack(textured_frames(2, 16))
    plain = SATeCoPipeline(model, diffusion).upscale_window(lr, 0, seed=0)
    fixed = SATeCoPipeline(model, diffusion, color_fix="adain", tile=8, tile_overlap=4).upscale_window(lr, 0, seed=0)
    reference = F.interpolate(torch.from_numpy(lr).permute(0, 3, 1, 2).float(), scale_factor=4, mode="bicubic")
    reference_means = reference.clamp(0, 255).mean((2, 3)).numpy()
    assert np.abs(plain.mean((1, 2)) - reference_means).max() > 5
    np.testing.assert_allclose(fixed.mean((1, 2)), reference_means, atol=1.0)
    deep = color_fix_frames(plain, lr.astype(np.uint16) * 257, "adain")  # 16-bit input on the same scale
    np.testing.assert_allclose(deep, color_fix_frames(plain, lr, "adain"), atol=1e-3)
