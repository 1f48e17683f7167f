"""Temporal consistency: tOF and tLPIPS as TecoGAN defines them (Chu et al. 2020, ``metrics.py`` of the
TecoGAN repository), and the warping error with an occlusion mask (Lai et al. 2018).

Clips are ``(T, H, W, 3)`` uint8 RGB (or sequences of frames), ``T >= 2``; each metric averages over the
``T - 1`` pairs of consecutive frames of one clip (then :func:`~satecco.metrics.common.mean_over_clips`).
Lower is better for all three; tOF and tLPIPS are 0 when ``pred`` equals ``gt``, the warping error when
the clip is static or its motion is recovered exactly.

- Optical flow is OpenCV's Farneback on ``cv2.COLOR_RGB2GRAY`` frames with TecoGAN's parameters
  ``(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)``.
  ``flow(a, b)[y, x] = (dx, dy)`` means ``a[y, x] ~ b[y + dy, x + dx]``.
- **tOF**: per pair, ``|flow(pred_{t-1}, pred_t) - flow(gt_{t-1}, gt_t)|`` as the Euclidean length of the
  per-pixel difference vector, averaged over TecoGAN's centre crop (``crop_8x8``: a multiple of 32 that
  leaves at least 8 pixels at each edge), in pixels. TecoGAN's tables print ``tOF x 10``.
- **tLPIPS**: per pair, ``|LPIPS(gt_t, gt_{t-1}) - LPIPS(pred_t, pred_{t-1})|`` with LPIPS-Alex v0.1
  (:class:`~satecco.metrics.perceptual.LPIPS`). TecoGAN's tables print ``tLP x 100``; values here are
  unscaled.
- **Warping error**: per pair, warp ``pred_{t-1}`` to ``t`` with the flow ``flow(ref_t, ref_{t-1})`` of
  the *reference* clip (``gt``; the output itself when no reference is given) by bilinear sampling, and
  take the mean squared error over the channels of [0, 1] RGB and over the pixels ``x`` that are not
  occluded: occlusion is the forward-backward check of Ruder et al. 2016 (as Lai et al. 2018 use it),
  ``|w(x) + w_b(x + w(x))|^2 > 0.01 (|w(x)|^2 + |w_b(x + w(x))|^2) + 0.5``, or a motion boundary,
  ``|grad w_x|^2 + |grad w_y|^2 > 0.01 |w|^2 + 0.002``, or a sampling point outside the frame; ``w`` is
  the flow ``t -> t-1`` and ``w_b`` the flow ``t-1 -> t``. A pair whose pixels are all occluded counts 0,
  as in Lai et al.'s code. Lai et al. warp ``t+1`` to ``t`` with FlowNet2; here it is ``t-1`` to ``t``
  with Farneback (no network weights are needed), so absolute values differ from their tables.
"""

from __future__ import annotations

import cv2
import numpy as np

from satecco.metrics.common import Unavailable, as_uint8_clip, check_same_shape

# TecoGAN metrics.py: cv2.calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0)
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2,
             "flags": 0}


def gray(frame: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``(H, W)`` uint8 luma, OpenCV's ``COLOR_RGB2GRAY`` (0.299 R + 0.587 G + 0.114 B)."""
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def farneback_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from ``a`` to ``b`` (``(H, W)`` uint8 grey or ``(H, W, 3)`` uint8 RGB): ``(H, W, 2)`` float32
    ``(dx, dy)`` with ``a[y, x] ~ b[y + dy, x + dx]``."""
    a = gray(a) if a.ndim == 3 else a
    b = gray(b) if b.ndim == 3 else b
    return cv2.calcOpticalFlowFarneback(a, b, None, **FARNEBACK)


def tecogan_crop(image: np.ndarray) -> np.ndarray:
    """TecoGAN's ``crop_8x8``: the centred ``h x w`` window, ``h``, ``w`` the largest multiples of 32 with
    ``h <= H - 16`` and ``w <= W - 16`` (at least 8 pixels off each edge)."""
    height, width = image.shape[:2]
    h, w = (height // 32) * 32, (width // 32) * 32
    while h > height - 16:
        h -= 32
    while w > width - 16:
        w -= 32
    if h <= 0 or w <= 0:
        raise ValueError(f"tOF needs frames of at least 48x48 pixels (TecoGAN's crop), got {height}x{width}")
    y, x = (height - h) // 2, (width - w) // 2
    return image[y:y + h, x:x + w]


def _clips(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = as_uint8_clip(pred, "pred"), as_uint8_clip(gt, "gt")
    check_same_shape(pred, gt)
    if len(pred) < 2:
        raise ValueError(f"temporal metrics need at least two frames, got {len(pred)}")
    return pred, gt


def tof(pred, gt) -> float:
    """TecoGAN's tOF of a clip (pixels, unscaled): ``pred``, ``gt`` ``(T, H, W, 3)`` uint8 RGB, ``T >= 2``."""
    pred, gt = _clips(pred, gt)
    pred_gray, gt_gray = [gray(f) for f in pred], [gray(f) for f in gt]
    values = []
    for t in range(1, len(pred)):
        difference = farneback_flow(pred_gray[t - 1], pred_gray[t]) - farneback_flow(gt_gray[t - 1], gt_gray[t])
        values.append(np.sqrt((tecogan_crop(difference).astype(np.float64) ** 2).sum(-1)).mean())
    return float(np.mean(values))


def tlpips(pred, gt, lpips) -> float | Unavailable:
    """TecoGAN's tLPIPS of a clip (unscaled): mean over pairs of ``|LPIPS(gt_t, gt_{t-1}) - LPIPS(pred_t, pred_{t-1})|``.

    ``pred``, ``gt``: ``(T, H, W, 3)`` uint8 RGB, ``T >= 2``. ``lpips``: an
    :class:`~satecco.metrics.perceptual.LPIPS` (AlexNet for TecoGAN's numbers), or the
    :class:`Unavailable` that :func:`~satecco.metrics.perceptual.load_lpips` returned, passed on.
    """
    if isinstance(lpips, Unavailable):
        return Unavailable("tLPIPS", lpips.reason)
    pred, gt = _clips(pred, gt)
    gt_steps = lpips.distances(gt[1:], gt[:-1])
    pred_steps = lpips.distances(pred[1:], pred[:-1])
    return float(np.mean(np.abs(gt_steps - pred_steps)))


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Bilinear backward warp: ``out[y, x] = image[y + flow[y, x, 1], x + flow[y, x, 0]]`` (edges replicated).

    ``image``: ``(H, W)`` or ``(H, W, C)`` float32; ``flow``: ``(H, W, 2)``.
    """
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def valid_mask(flow: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels of ``flow`` (``t -> t-1``) that are not occluded (Ruder et al.'s forward-backward
    and motion-boundary tests with ``flow_back``, ``t-1 -> t``) and whose sampling point lies inside the frame."""
    flow, flow_back = flow.astype(np.float32), flow_back.astype(np.float32)
    back = warp(flow_back, flow)  # w_b(x + w(x))
    length_sq = (flow**2).sum(-1)
    back_sq = (back**2).sum(-1)
    inconsistent = ((flow + back) ** 2).sum(-1) > 0.01 * (length_sq + back_sq) + 0.5
    gradient_sq = np.zeros(flow.shape[:2], dtype=np.float32)
    for c in range(2):  # forward differences, zero on the last row/column (Lai et al.'s compute_flow_gradients)
        gradient_sq[:, :-1] += (flow[:, :-1, c] - flow[:, 1:, c]) ** 2
        gradient_sq[:-1, :] += (flow[:-1, :, c] - flow[1:, :, c]) ** 2
    boundary = gradient_sq > 0.01 * length_sq + 0.002
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    x, y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return ~inconsistent & ~boundary & inside


def warping_error(pred, reference=None) -> float:
    """Warping error of a clip (mean squared error in [0, 1] RGB over non-occluded pixels, averaged over pairs).

    ``pred``: ``(T, H, W, 3)`` uint8 RGB, ``T >= 2``; ``reference``: the clip whose motion is trusted
    (the ground truth), same shape; ``None`` estimates the flow on ``pred`` itself.
    """
    pred, reference = _clips(pred, pred if reference is None else reference)
    ref_gray = [gray(f) for f in reference]
    frames = pred.astype(np.float32) / 255.0
    values = []
    for t in range(1, len(pred)):
        flow = farneback_flow(ref_gray[t], ref_gray[t - 1])
        mask = valid_mask(flow, farneback_flow(ref_gray[t - 1], ref_gray[t]))
        if not mask.any():
            values.append(0.0)
            continue
        squared = (warp(frames[t - 1], flow) - frames[t]).astype(np.float64) ** 2
        values.append(float(squared[mask].mean()))
    return float(np.mean(values))
