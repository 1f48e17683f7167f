"""MATLAB's ``imresize`` with its default bicubic kernel and antialiasing, which NIQE's half scale needs.

A port of MATLAB's ``imresize.m`` (R2013+), as BasicSR's ``basicsr/utils/matlab_functions.py`` also ports
it; numbers follow MATLAB, not OpenCV or PIL, which differ at the borders and (OpenCV) in antialiasing:

- kernel: Keys' cubic with ``a = -0.5``; when shrinking (``scale < 1``) it is stretched by ``1 / scale``
  (``scale * cubic(scale * x)``, width ``4 / scale``), which is the antialiasing;
- output pixel ``x`` (1-based) samples input coordinate ``u = x / scale + 0.5 (1 - 1 / scale)``, so
  pixel centres line up; each output's weights are normalised to sum to one;
- borders are symmetric (``[1..n, n..1]`` repeated: the edge pixel is mirrored, not the one inside it);
- dimensions are resized one at a time, the one with the smallest scale first (rows first on a tie);
- float in, float out, unclipped; uint8 in, uint8 out, rounded and clipped, as MATLAB does.
"""

from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``), support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    inner = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return inner + outer


def contributions(in_length: int, out_length: int, scale: float, antialiasing: bool = True):
    """MATLAB's ``contributions``: ``(weights, indices)``, both ``(out_length, P)``; output ``i`` is
    ``sum_p weights[i, p] * input[indices[i, p]]`` (0-based indices, borders already mirrored)."""
    kernel_width = 4.0
    stretch = scale < 1 and antialiasing
    if stretch:
        kernel_width /= scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based, may fall outside [1, in_length]
    distance = u[:, None] - indices
    weights = scale * cubic(distance * scale) if stretch else cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    return weights, indices


def _resize_axis(image: np.ndarray, axis: int, out_length: int, scale: float, antialiasing: bool) -> np.ndarray:
    weights, indices = contributions(image.shape[axis], out_length, scale, antialiasing)
    moved = np.moveaxis(image, axis, 0)  # (L, ...)
    gathered = moved[indices]  # (out, P, ...)
    out = np.einsum("op,op...->o...", weights, gathered)
    return np.moveaxis(out, 0, axis)


def imresize(image, scale: float | None = None, output_shape: tuple[int, int] | None = None,
             antialiasing: bool = True) -> np.ndarray:
    """Resize an ``(H, W)`` or ``(H, W, C)`` image like MATLAB's ``imresize(image, scale)`` (bicubic).

    Give ``scale`` (output size ``ceil(scale * H) x ceil(scale * W)``) or ``output_shape`` ``(H', W')``
    (then each axis uses its own scale ``H' / H``, ``W' / W``). Float images come back float64 and
    unclipped; uint8 images come back uint8, rounded and clipped.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"imresize takes an (H, W) or (H, W, C) image, got shape {image.shape}")
    height, width = image.shape[:2]
    if (scale is None) == (output_shape is None):
        raise ValueError(f"give exactly one of scale and output_shape, got scale={scale}, output_shape={output_shape}")
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        shape = (math.ceil(scale * height), math.ceil(scale * width))
    else:
        shape = tuple(int(n) for n in output_shape)
        if len(shape) != 2 or min(shape) <= 0:
            raise ValueError(f"output_shape must be two positive sizes, got {output_shape}")
        scales = (shape[0] / height, shape[1] / width)
    out = image.astype(np.float64)
    for axis in sorted((0, 1), key=lambda a: scales[a]):  # stable: rows first on a tie, as MATLAB
        out = _resize_axis(out, axis, shape[axis], scales[axis], antialiasing)
    if image.dtype == np.uint8:
        return np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8)  # MATLAB rounds halves up
    return out
