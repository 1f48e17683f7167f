"""DISTS (Ding, Ma, Wang and Simoncelli 2020, "Image quality assessment: unifying structure and texture
similarity"), the model of the authors' ``DISTS_pytorch`` with its weights read from a local file.

Convention, as ``DISTS_pytorch``: RGB in [0, 1] (8-bit frames divided by 255), no resizing; features
are the input itself and VGG16's relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (ImageNet-normalised
input; the max-pools replaced by L2 pooling with a 3x3 Hann window, stride 2); per channel ``k`` of each
stage, texture ``S1 = (2 mu_x mu_y + c) / (mu_x^2 + mu_y^2 + c)`` and structure
``S2 = (2 cov_xy + c) / (var_x + var_y + c)`` over the whole feature map (population statistics,
``c = 1e-6``); ``DISTS = 1 - sum_k (alpha_k S1_k + beta_k S2_k) / sum(alpha + beta)``. Lower is better;
0 for identical frames.

Weights (:func:`load_dists`), from a file or a folder holding one of:

- ``dists.safetensors`` (or ``DISTS*.pth``/``dists*.pth``): the full state dict in ``DISTS_pytorch``'s
  layout (``stage<s>.<i>.weight``/``bias`` with torchvision's VGG16 layer indices ``i``, ``alpha``,
  ``beta`` of shape ``(1, 1475, 1, 1)``); constant buffers (``mean``, ``std``, ``*.filter``) are ignored;
- ``weights.pt`` (``DISTS_pytorch``'s file: ``alpha`` and ``beta`` only) beside torchvision's VGG16
  checkpoint (``vgg16-397923af.pth`` or ``vgg16.safetensors``, ``features.<i>.*`` keys).

Without them the result is :class:`~satecco.metrics.common.Unavailable`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from satecco.metrics.common import Unavailable, find_file, load_state_dict
from satecco.metrics.perceptual import FramePairMetric

# VGG16 "D" features by torchvision index, grouped into DISTS' stages; "P" marks the pool that DISTS
# replaces by L2 pooling (it keeps the index, so state dict keys match torchvision's).
_STAGES = (
    ((0, 3, 64), (2, 64, 64)),
    ((4, "P", 64), (5, 64, 128), (7, 128, 128)),
    ((9, "P", 128), (10, 128, 256), (12, 256, 256), (14, 256, 256)),
    ((16, "P", 256), (17, 256, 512), (19, 512, 512), (21, 512, 512)),
    ((23, "P", 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)),
)
CHANNELS = (3, 64, 128, 256, 512, 512)
_CONSTANT_BUFFERS = ("mean", "std", "filter")
FULL_FILES = ("dists.safetensors", "DISTS*.pth", "dists*.pth")
ALPHA_BETA_FILES = ("weights.pt",)
VGG_FILES = ("vgg16.safetensors", "vgg16*.pth")


class L2Pooling(nn.Module):
    """``sqrt(hann3x3 * x^2)`` per channel, stride 2, padding 1 (the DISTS paper's anti-aliased pooling)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor(np.hanning(5)[1:-1], dtype=torch.float32)  # [0.5, 1, 0.5]
        window = a[:, None] * a[None, :]
        self.register_buffer("filter", (window / window.sum()).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.conv2d(x**2, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTSNet(nn.Module):
    """The DISTS network: ``forward(x, y)`` with ``x``, ``y`` ``(B, 3, H, W)`` in [0, 1] -> ``(B,)`` scores."""

    def __init__(self):
        super().__init__()
        self.stages = []
        for s, layers in enumerate(_STAGES, start=1):
            stage = nn.Sequential()
            for index, c_in, c_out in layers:
                if c_in == "P":
                    stage.add_module(str(index), L2Pooling(c_out))
                else:
                    stage.add_module(str(index), nn.Conv2d(c_in, c_out, 3, padding=1))
                    stage.add_module(str(index + 1), nn.ReLU(inplace=False))
            setattr(self, f"stage{s}", stage)
            self.stages.append(stage)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.alpha = nn.Parameter(torch.full((1, sum(CHANNELS), 1, 1), 0.1))
        self.beta = nn.Parameter(torch.full((1, sum(CHANNELS), 1, 1), 0.1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        out = [x]  # the raw input is DISTS' stage 0
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c1 = c2 = 1e-6
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, CHANNELS, dim=1)
        betas = torch.split(self.beta / total, CHANNELS, dim=1)
        texture = structure = 0
        for fx, fy, alpha, beta in zip(self.features(x), self.features(y), alphas, betas, strict=True):
            mx, my = fx.mean([2, 3], keepdim=True), fy.mean([2, 3], keepdim=True)
            s1 = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
            texture = texture + (alpha * s1).sum(1, keepdim=True)
            vx, vy = ((fx - mx) ** 2).mean([2, 3], keepdim=True), ((fy - my) ** 2).mean([2, 3], keepdim=True)
            cov = (fx * fy).mean([2, 3], keepdim=True) - mx * my
            s2 = (2 * cov + c2) / (vx + vy + c2)
            structure = structure + (beta * s2).sum(1, keepdim=True)
        return 1 - (texture + structure).flatten()


def vgg_to_stages(vgg: dict) -> dict:
    """torchvision VGG16 ``features.<i>.<p>`` keys -> DISTS ``stage<s>.<i>.<p>`` keys (convolutions only)."""
    where = {index: s for s, layers in enumerate(_STAGES, start=1) for index, c_in, _ in layers if c_in != "P"}
    out = {}
    for key, value in vgg.items():
        if key.startswith("features."):
            index = int(key.split(".")[1])
            if index in where:
                out[f"stage{where[index]}.{key.removeprefix('features.')}"] = value
    return out


class DISTS(FramePairMetric):
    """DISTS distance, built once (weights loaded in ``__init__``); ``state`` in ``DISTS_pytorch``'s layout."""

    batch_size = 4

    def __init__(self, state: dict, device: str | torch.device = "cpu", source: str = ""):
        state = {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in _CONSTANT_BUFFERS}
        net = DISTSNet()
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{source}: not DISTS weights: {error}") from error
        self.model = net.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.source = source

    def _pair(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model((x + 1) / 2, (y + 1) / 2)  # DISTS takes [0, 1]


def load_dists(weights, device: str | torch.device = "cpu") -> DISTS | Unavailable:
    """A :class:`DISTS` from ``weights`` (see the module docstring for the files); :class:`Unavailable`
    when ``weights`` is None or the files are not there."""
    if weights is None:
        return Unavailable("DISTS", "no weights folder given")
    path = find_file(weights, FULL_FILES + ALPHA_BETA_FILES)
    if path is None:
        return Unavailable("DISTS", f"none of {FULL_FILES + ALPHA_BETA_FILES} in {weights}")
    state = load_state_dict(path)
    source = str(path)
    if not any(key.startswith("stage") for key in state):  # alpha and beta only: the VGG16 comes apart
        vgg_path = find_file(path.parent, VGG_FILES)
        if vgg_path is None:
            return Unavailable("DISTS", f"{path} holds only alpha and beta, and no {' or '.join(VGG_FILES)} is beside it")
        state = {**vgg_to_stages(load_state_dict(vgg_path)), **state}
        source = f"{path} + {vgg_path}"
    return DISTS(state, device=device, source=source)
