"""PSNR and SSIM exactly as BasicSR computes them (``basicsr/metrics/psnr_ssim.py``).

Convention, shared by every function here:

- frames are ``(H, W, 3)`` RGB (channel order matters only for the Y channel), uint8 or float, with
  pixel values in [0, 255] (peak 255); everything is computed in float64;
- ``crop_border`` pixels are dropped at each edge first (BasicSR crops the scale factor for SR);
- ``y_channel=True`` compares only the BT.601 luma of :func:`rgb_to_y_bt601` (the Vid4 convention),
  kept as float, not rounded, as BasicSR does;
- PSNR is ``10 log10(255^2 / MSE)`` with the MSE over all pixels and channels, ``inf`` when identical;
- SSIM (Wang et al. 2004) uses an 11x11 Gaussian window with sigma 1.5 (``cv2.getGaussianKernel``),
  ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, population (biased) variances, the map over the
  *valid* region only (no padding: BasicSR's ``[5:-5, 5:-5]``), averaged, then averaged over channels;
- a clip's score is the mean over its frames (:func:`video_psnr`, :func:`video_ssim`) and a data set's
  the mean over its clips (:func:`~satecco.metrics.common.mean_over_clips`).

The only difference from BasicSR's code is arithmetic order: the Gaussian filter is applied as two 1-D
passes rather than ``cv2.filter2D``'s 2-D pass, and BasicSR's Y conversion runs in float32 where this one
runs in float64. Both change results by less than 1e-6 dB / 1e-8 SSIM (tests check it).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from satecco.metrics.common import as_frame, check_same_shape, crop, mean_over_frames

# ITU-R BT.601 luma for [0, 1] RGB giving Y in [16, 235] / 255 (MATLAB's rgb2ycbcr, BasicSR's bgr2ycbcr).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])  # R, G, B
_SSIM_SIZE, _SSIM_SIGMA = 11, 1.5
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def rgb_to_y_bt601(image) -> np.ndarray:
    """BT.601 luma of an ``(H, W, 3)`` RGB frame in [0, 255]: ``16 + (65.481 R + 128.553 G + 24.966 B) / 255``.

    Returns ``(H, W)`` float64 in [16, 235] (black 16, white 235), unrounded; equal to BasicSR's
    ``bgr2ycbcr(img / 255, y_only=True) * 255`` on the same pixels in BGR order.
    """
    image = as_frame(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"the Y channel needs an (H, W, 3) RGB frame, got shape {image.shape}")
    return image @ _Y_WEIGHTS / 255.0 + 16.0


def _prepare(pred, gt, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = as_frame(pred, "pred"), as_frame(gt, "gt")
    check_same_shape(pred, gt)
    pred, gt = crop(pred, crop_border), crop(gt, crop_border)
    if y_channel:
        pred, gt = rgb_to_y_bt601(pred), rgb_to_y_bt601(gt)
    return pred, gt


def psnr(pred, gt, crop_border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB between two frames (BasicSR's ``calculate_psnr``); ``inf`` when they are identical.

    ``pred``, ``gt``: ``(H, W, 3)`` RGB (or ``(H, W)`` grey), uint8 or float in [0, 255].
    """
    pred, gt = _prepare(pred, gt, crop_border, y_channel)
    mse = np.mean((pred - gt) ** 2)
    return math.inf if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def gaussian_window_1d(size: int = _SSIM_SIZE, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    """``cv2.getGaussianKernel(size, sigma)`` as a flat float64 array: ``exp(-(i - c)^2 / 2 sigma^2)``, summing to 1."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _filter_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation of ``(H, W)`` with ``outer(kernel, kernel)``, valid region only: ``(H-k+1, W-k+1)``."""
    rows = sliding_window_view(image, kernel.size, axis=0) @ kernel
    return sliding_window_view(rows, kernel.size, axis=1) @ kernel


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    kernel = gaussian_window_1d()
    mu_x, mu_y = _filter_valid(x, kernel), _filter_valid(y, kernel)
    var_x = _filter_valid(x * x, kernel) - mu_x**2
    var_y = _filter_valid(y * y, kernel) - mu_y**2
    cov_xy = _filter_valid(x * y, kernel) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + _C1) * (2 * cov_xy + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2))
    return float(ssim_map.mean())


def ssim(pred, gt, crop_border: int = 0, y_channel: bool = False) -> float:
    """SSIM between two frames (BasicSR's ``calculate_ssim``): per channel over the valid region, then the
    mean over channels; 1.0 for identical frames.

    ``pred``, ``gt``: ``(H, W, 3)`` RGB (or ``(H, W)`` grey), uint8 or float in [0, 255], at least 11x11
    after cropping.
    """
    pred, gt = _prepare(pred, gt, crop_border, y_channel)
    if min(pred.shape[:2]) < _SSIM_SIZE:
        raise ValueError(f"SSIM needs at least {_SSIM_SIZE}x{_SSIM_SIZE} pixels after cropping, got {pred.shape[:2]}")
    if pred.ndim == 2:
        return _ssim_channel(pred, gt)
    return float(np.mean([_ssim_channel(pred[..., c], gt[..., c]) for c in range(pred.shape[-1])]))


def video_psnr(pred, gt, crop_border: int = 0, y_channel: bool = False) -> float:
    """Mean over frames of :func:`psnr`; ``pred``, ``gt``: ``(T, H, W, 3)`` clips or sequences of frames."""
    return mean_over_frames(psnr, pred, gt, crop_border=crop_border, y_channel=y_channel)


def video_ssim(pred, gt, crop_border: int = 0, y_channel: bool = False) -> float:
    """Mean over frames of :func:`ssim`; ``pred``, ``gt``: ``(T, H, W, 3)`` clips or sequences of frames."""
    return mean_over_frames(ssim, pred, gt, crop_border=crop_border, y_channel=y_channel)
