"""The paper's evaluation metrics (§4.1) as pure functions, one concept per module.

- :mod:`~satecco.metrics.fidelity`: PSNR and SSIM exactly as BasicSR computes them, RGB or BT.601 Y;
- :mod:`~satecco.metrics.perceptual`: LPIPS (the ``lpips`` package) with a local backbone file;
- :mod:`~satecco.metrics.dists`: DISTS (Ding et al. 2020) with local weights;
- :mod:`~satecco.metrics.clipiqa`: CLIP-IQA (Wang et al. 2023) with a local CLIP folder;
- :mod:`~satecco.metrics.niqe`: NIQE, a port of the MATLAB release (and of BasicSR's port of it);
- :mod:`~satecco.metrics.imresize`: MATLAB's ``imresize`` (bicubic, antialiased), which NIQE needs;
- :mod:`~satecco.metrics.temporal`: tOF and tLPIPS as TecoGAN defines them, warping error;
- :mod:`~satecco.metrics.common`: :class:`Unavailable`, input checks, frame and clip averaging.

Frames are ``(H, W, 3)`` RGB, uint8 or float in [0, 255]; clips are ``(T, H, W, 3)``. Averaging is per
frame, then per clip (:func:`~satecco.metrics.common.mean_over_frames`, then
:func:`~satecco.metrics.common.mean_over_clips`), as BasicSR does.

A metric that needs pretrained weights is built by a ``load_*`` function from a local file or folder;
when the weights are absent it returns :class:`Unavailable` with the reason, never a number.

Importing this package is light (NumPy only); torch, ``lpips``, ``transformers``, OpenCV and SciPy are
imported by the modules that use them.
"""

from satecco.metrics.common import Unavailable

__all__ = ["Unavailable"]
