"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with its backbone read from a local file.

Convention: LPIPS v0.1, ``lpips.LPIPS(net=..., version='0.1')`` with the package's own linear-layer
weights (they ship inside the package), spatially averaged (``spatial=False``), on 8-bit RGB frames
mapped to [-1, 1] as ``x / 127.5 - 1`` (:func:`satecco.layout.frames_to_model`, the same mapping as the
package's ``im2tensor``); no resizing. Lower is better; 0 for identical frames. AlexNet (``net='alex'``)
is the backbone that papers report and TecoGAN's tLPIPS uses.

The backbone's ImageNet weights are what ``lpips`` would download through torchvision, which cannot
happen here, so :func:`load_lpips` reads them from a local file or folder instead: torchvision's own
checkpoint (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``, read with ``weights_only=True``) or a
``alexnet.safetensors``/``vgg16.safetensors`` with the same keys (``features.<i>.weight``, ...; other keys
such as ``classifier.*`` are ignored). Without it the result is :class:`~satecco.metrics.common.Unavailable`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from satecco.layout import frames_to_model
from satecco.metrics.common import Unavailable, as_uint8_clip, check_same_shape, find_file, load_state_dict

# Backbone file names looked for in a weights folder, in order.
BACKBONE_FILES = {
    "alex": ("alexnet.safetensors", "alexnet*.pth"),
    "vgg": ("vgg16.safetensors", "vgg16*.pth"),
}


def _backbone_state(model: torch.nn.Module, state: dict, path: Path) -> dict:
    """Map torchvision's ``features.<i>.<p>`` keys onto lpips' ``slice<k>.<i>.<p>`` (it keeps the index)."""
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    mapped, missing = {}, []
    for key in model.state_dict():
        _, rest = key.split(".", 1)  # "slice2.3.weight" -> "3.weight"
        if rest in features:
            mapped[key] = features[rest]
        else:
            missing.append(f"features.{rest}")
    if missing:
        raise ValueError(f"{path}: not a torchvision backbone for LPIPS, missing {missing[:4]}")
    return mapped


class FramePairMetric:
    """A full-reference network metric over frame pairs, batched.

    Subclasses set ``model``, ``device`` and ``batch_size`` and define :meth:`_pair` on
    ``(N, 3, H, W)`` float tensors in [-1, 1].
    """

    batch_size = 8

    def _pair(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def distances(self, a, b) -> np.ndarray:
        """The metric for each frame pair: ``a``, ``b`` ``(T, H, W, 3)`` uint8 RGB -> ``(T,)`` float64."""
        a, b = as_uint8_clip(a, "a"), as_uint8_clip(b, "b")
        check_same_shape(a, b)
        out = []
        for start in range(0, len(a), self.batch_size):
            x = rearrange(frames_to_model(a[start:start + self.batch_size], self.device), "1 t c h w -> t c h w")
            y = rearrange(frames_to_model(b[start:start + self.batch_size], self.device), "1 t c h w -> t c h w")
            out.append(self._pair(x, y).flatten().double().cpu().numpy())
        return np.concatenate(out)

    def __call__(self, pred, gt) -> float:
        """The metric between two ``(H, W, 3)`` uint8 RGB frames."""
        return float(self.distances(pred, gt)[0])

    def video(self, pred, gt) -> float:
        """Mean over frames of the metric between two ``(T, H, W, 3)`` uint8 clips."""
        return float(self.distances(pred, gt).mean())


class LPIPS(FramePairMetric):
    """LPIPS distance, built once (weights loaded in ``__init__``), called per frame or per clip.

    Use :func:`load_lpips` to build it from a weights folder; ``backbone`` is a torchvision state dict.
    """

    def __init__(self, backbone: dict, net: str = "alex", device: str | torch.device = "cpu", source: str = ""):
        import lpips

        if net not in BACKBONE_FILES:
            raise ValueError(f"net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
        with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(pretrained=True, net=net, version="0.1", pnet_rand=True, verbose=False)
        model.net.load_state_dict(_backbone_state(model.net, backbone, Path(source)), strict=True)
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.net = net
        self.source = source

    def _pair(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model(x, y)


def load_lpips(weights, net: str = "alex", device: str | torch.device = "cpu") -> LPIPS | Unavailable:
    """An :class:`LPIPS` with the backbone from ``weights`` (a file, or a folder holding one of
    :data:`BACKBONE_FILES`); :class:`Unavailable` when ``weights`` is None or holds no such file."""
    if net not in BACKBONE_FILES:
        raise ValueError(f"net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    if weights is None:
        return Unavailable("LPIPS", f"no weights folder given for the {net} backbone")
    path = find_file(weights, BACKBONE_FILES[net])
    if path is None:
        return Unavailable("LPIPS", f"no {' or '.join(BACKBONE_FILES[net])} in {weights}")
    return LPIPS(load_state_dict(path), net=net, device=device, source=str(path))
