"""SATeCo's modules one by one: the paper's equations, identity at init, and locality."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import perturb_
from einops import rearrange

from satecco.models.attention import from_windows, multihead_attention
from satecco.models.latent_encoder import LatentEncoder
from satecco.models.refiner import VideoRefiner
from satecco.models.sfa import SpatialFeatureAdaptation
from satecco.models.tfa import TemporalFeatureAlignment
from satecco.models.tmsa import TMSALayer
from satecco.models.upscaler import VideoUpscaler


def test_sfa_is_identity_at_init_and_follows_eq2_when_trained():
    torch.manual_seed(0)
    sfa = SpatialFeatureAdaptation(8, 6)
    f = torch.randn(4, 8, 10, 12) * 3 + 1
    g = torch.randn(4, 6, 10, 12)
    torch.testing.assert_close(sfa(f, g), f, atol=1e-5, rtol=1e-5)

    perturb_(sfa, std=0.1)
    mean = f.mean(dim=(2, 3), keepdim=True)
    std = (f.var(dim=(2, 3), unbiased=False, keepdim=True) + sfa.eps).sqrt()
    scale = std + F.conv2d(g, sfa.to_scale.weight, sfa.to_scale.bias, padding=1)
    shift = mean + F.conv2d(g, sfa.to_shift.weight, sfa.to_shift.bias, padding=1)
    torch.testing.assert_close(sfa(f, g), scale * (f - mean) / std + shift, atol=1e-5, rtol=1e-5)


def test_sfa_statistics_are_per_frame():
    sfa = SpatialFeatureAdaptation(3, 3)
    with torch.no_grad():
        sfa.to_scale.bias.fill_(1.0)  # S = sigma + 1: output depends on each frame's own normalisation
    f = torch.randn(2, 3, 6, 6)
    g = torch.zeros(2, 3, 6, 6)
    both = sfa(f, g)
    alone = sfa(f[1:], g[1:])
    torch.testing.assert_close(both[1:], alone)
    scaled = sfa(torch.cat([f[:1] * 10, f[1:]]), g)
    torch.testing.assert_close(scaled[1:], both[1:])


@pytest.mark.parametrize("size", [(16, 16), (13, 21)])
def test_tfa_is_identity_at_init(size):
    torch.manual_seed(0)
    tfa = TemporalFeatureAlignment(16, 8, window_size=8, head_dim=8)
    f = torch.randn(2 * 6, 16, *size)
    g = torch.randn(2 * 6, 8, *size)
    torch.testing.assert_close(tfa(f, g, num_frames=6), f, atol=1e-6, rtol=0)


def test_tfa_attends_within_its_tubelet_across_all_frames():
    torch.manual_seed(0)
    tfa = perturb_(TemporalFeatureAlignment(8, 8, window_size=8, head_dim=8, kernel_size=(1, 1, 1)), std=0.2)
    frames = 6
    f = torch.randn(frames, 8, 16, 16)
    g = torch.randn(frames, 8, 16, 16)
    base = tfa(f, g, frames)
    f2 = f.clone()
    f2[0, :, 2, 3] += 5.0 * torch.randn(8)  # one pixel of frame 0 in the top-left 8x8 window
    changed = (tfa(f2, g, frames) - base).abs().amax(dim=1)  # (T, H, W)
    assert (changed[:, :8, :8] > 1e-4).all(), "every frame of the tubelet sees the change"
    assert changed[:, 8:, :].max() < 1e-6 and changed[:, :, 8:].max() < 1e-6, "other tubelets do not"

    g2 = g.clone()
    g2[3, :, 12, 12] += 5.0 * torch.randn(8)  # guidance in the bottom-right window reaches that tubelet only
    changed = (tfa(f, g2, frames) - base).abs().amax(dim=1)
    assert (changed[:, 8:, 8:] > 1e-4).all()
    assert changed[:, :8, :].max() < 1e-6 and changed[:, :, :8].max() < 1e-6


def test_tfa_masks_its_internal_padding():
    """A border window of a 12x12 map (padded to 16x16) attends only to its 4x4 real tokens."""
    torch.manual_seed(0)
    tfa = perturb_(TemporalFeatureAlignment(8, 8, window_size=8, head_dim=8, kernel_size=(1, 1, 1)), std=0.2)
    q, k, v = torch.randn(3, 1, 8, 6, 12, 12).unbind(0)
    full = tfa._attend(q, k, v, tfa.self_out)
    tokens = [rearrange(x[..., 8:, 8:], "1 c t h w -> 1 (t h w) c") for x in (q, k, v)]
    reference = tfa.self_out(multihead_attention(*tokens, heads=tfa.heads))
    reference = rearrange(reference, "1 (t h w) c -> 1 c t h w", t=6, h=4, w=4)
    assert full.shape == q.shape
    torch.testing.assert_close(full[..., 8:, 8:], reference, atol=1e-5, rtol=1e-5)


def test_tfa_calls_attention_without_a_mask_and_equals_the_masked_form(monkeypatch):
    """A 12x20 map (padded to 16x24): interior, right, bottom and corner windows. No SDPA call gets a
    mask (so a GPU may take its flash kernel), and the output equals attention with a key padding mask
    over the padded windows, as it was computed before."""
    import torch.nn.functional as F

    from satecco.models.attention import crop_volume, pad_volume, to_windows

    torch.manual_seed(0)
    tfa = perturb_(TemporalFeatureAlignment(8, 8, window_size=8, head_dim=4, kernel_size=(1, 1, 1)), std=0.2)
    q, k, v = torch.randn(3, 2, 8, 6, 12, 20).unbind(0)
    window = (6, 8, 8)
    padded, spec = zip(*(pad_volume(x, window) for x in (q, k, v)), strict=True)
    valid = torch.zeros((1, 1, *padded[0].shape[2:]), dtype=torch.bool)
    crop_volume(valid, spec[0]).fill_(True)
    mask = to_windows(valid, window)[..., 0].repeat(2, 1)[:, None, None, :]
    heads = [rearrange(to_windows(x, window), "n s (h d) -> n h s d", h=tfa.heads) for x in padded]
    masked = rearrange(F.scaled_dot_product_attention(*heads, attn_mask=mask), "n h s d -> n s (h d)")
    reference = crop_volume(from_windows(tfa.self_out(masked), window, 2, padded[0].shape[2:]), spec[0])

    masks = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda *args, **kwargs: masks.append(kwargs.get("attn_mask")) or sdpa(*args, **kwargs))
    got = tfa._attend(q, k, v, tfa.self_out)
    assert len(masks) == 4 and all(m is None for m in masks)  # one unmasked call per kind of window
    torch.testing.assert_close(got, reference, atol=1e-6, rtol=1e-5)


def test_tmsa_pairs_neighbouring_frames():
    torch.manual_seed(0)
    layer = perturb_(TMSALayer(8, heads=2, window=(2, 4, 4), shifted=False), std=0.2)
    x = torch.randn(1, 8, 6, 8, 8)
    base = layer(x)
    for frame, affected in [(1, {0, 1}), (2, {2, 3})]:
        x2 = x.clone()
        x2[:, :, frame] += 3.0 * torch.randn(1, 8, 1, 1)
        moved = {t for t in range(6) if (layer(x2) - base)[:, :, t].abs().max() > 1e-5}
        assert moved == affected
    shifted = perturb_(TMSALayer(8, heads=2, window=(2, 4, 4), shifted=True), std=0.2)
    x2 = x.clone()
    x2[:, :, 1] += 3.0 * torch.randn(1, 8, 1, 1)  # shifted windows pair frames (1, 2)
    moved = {t for t in range(6) if (shifted(x2) - shifted(x))[:, :, t].abs().max() > 1e-5}
    assert moved == {1, 2}


def test_upscaler_starts_as_bicubic_and_keeps_odd_sizes():
    torch.manual_seed(0)
    upscaler = VideoUpscaler(channels=16, head_dim=8)
    lr = torch.rand(1, 5, 3, 13, 7) * 2 - 1
    out = upscaler(lr)
    assert out.shape == (1, 5, 3, 52, 28)
    bicubic = F.interpolate(lr[0], scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(out[0], bicubic)
    perturb_(upscaler)
    assert not torch.allclose(upscaler(lr)[0], bicubic, atol=1e-3)


def test_refiner_is_eq5():
    refiner = VideoRefiner(channels=8, weight=0.5)
    xu, xd = torch.randn(2, 1, 3, 3, 8, 8).unbind(0)
    torch.testing.assert_close(refiner(xu, xd), 0.5 * xu + 0.5 * xd)
    refiner = VideoRefiner(channels=8, weight=0.25)
    torch.testing.assert_close(refiner(xu, xd), 0.25 * xu + 0.75 * xd)


def test_latent_encoder_gives_each_block_its_level():
    encoder = LatentEncoder(latent_channels=4, level_channels=(8, 16, 32), block_channels=(32, 32, 16, 8),
                            block_levels=(2, 1, 0, 0))
    maps = encoder(torch.randn(3, 4, 20, 12))
    assert [tuple(m.shape) for m in maps] == [(3, 32, 5, 3), (3, 32, 10, 6), (3, 16, 20, 12), (3, 8, 20, 12)]
