"""SFA then TFA after every decoder block of a frozen network (UNet or VAE decoder).

The adapters enter the frozen network through forward hooks on its decoder blocks
(``unet.up_blocks[i]``, ``vae.decoder.up_blocks[i]``): :meth:`DecoderAdapters.attach` registers them
and :meth:`DecoderAdapters.guidance` supplies the guidance maps for the forward passes inside it.
Hooks keep the frozen modules' parameter names untouched, so base checkpoints load unchanged.

:meth:`DecoderAdapters.without_tfa` switches TFA off (SFA stays): with it every frame passes the
decoder on its own, which is what the frame-wise baseline (``satecco upscale --method framewise``) needs.
``sfa_enabled`` and ``tfa_enabled`` are the run-time switches behind ``--no-sfa`` and ``--no-tfa``: a
switched-off adapter passes the frozen block's output through unchanged.

Gradient checkpointing (:meth:`DecoderAdapters.enable_gradient_checkpointing`): the frozen network
recomputes its blocks in the backward pass, after :meth:`DecoderAdapters.guidance` has ended, so the
recomputation re-enters the guidance its forward pass had (``checkpoint``'s ``context_fn``), and each
adapter is checkpointed with its guidance as an argument.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.utils.checkpoint import checkpoint

from satecco.models.sfa import SpatialFeatureAdaptation
from satecco.models.tfa import TemporalFeatureAlignment


class DecoderAdapters(ModelMixin, ConfigMixin):
    """One SFA + TFA pair per decoder block.

    Args:
        block_channels: output width of each decoder block, in decoder order.
        guidance_channels: width of the guidance map each block receives.
        window_size: TFA spatial window (8 in the paper).
        head_dim: TFA channels per head.
        sfa_kernel_size: kernel of SFA's Conv2D layers.
        tfa_kernel_size: ``(kt, kh, kw)`` of TFA's Conv3D projections.
    """

    @register_to_config
    def __init__(self, block_channels: tuple[int, ...] = (1280, 1280, 640, 320),
                 guidance_channels: tuple[int, ...] = (1280, 1280, 640, 320), window_size: int = 8,
                 head_dim: int = 64, sfa_kernel_size: int = 3, tfa_kernel_size: tuple[int, int, int] = (3, 3, 3)):
        super().__init__()
        if len(block_channels) != len(guidance_channels):
            raise ValueError(f"block_channels {block_channels} and guidance_channels {guidance_channels} "
                             "differ in length")
        self.sfa = nn.ModuleList(
            SpatialFeatureAdaptation(c, g, sfa_kernel_size) for c, g in zip(block_channels, guidance_channels, strict=True)
        )
        self.tfa = nn.ModuleList(
            TemporalFeatureAlignment(c, g, window_size, head_dim, tuple(tfa_kernel_size))
            for c, g in zip(block_channels, guidance_channels, strict=True)
        )
        self._guidance: Sequence[torch.Tensor] | None = None
        self._num_frames = 0
        #: run-time switches, not part of the saved config: False skips SFA or TFA (see :meth:`without_tfa`)
        self.sfa_enabled = True
        self.tfa_enabled = True
        #: recompute the adapters in the backward pass (:meth:`enable_gradient_checkpointing`)
        self.checkpointing = False

    def adapt(self, index: int, features: torch.Tensor, guidance: torch.Tensor, num_frames: int) -> torch.Tensor:
        """SFA then TFA for block ``index``. ``features`` ``(B·T, C, H, W)``, ``guidance`` ``(B·T, Cg, H, W)``."""
        if guidance.shape[-2:] != features.shape[-2:]:
            raise RuntimeError(f"decoder block {index}: guidance {tuple(guidance.shape)} does not match "
                               f"features {tuple(features.shape)}")
        adapted = self.sfa[index](features, guidance) if self.sfa_enabled else features
        return self.tfa[index](adapted, guidance, num_frames) if self.tfa_enabled else adapted

    @contextmanager
    def without_tfa(self) -> Iterator[None]:
        """Skip TFA inside the block (SFA, which works per frame, stays on): no feature of one frame then
        reaches another through these adapters."""
        previous, self.tfa_enabled = self.tfa_enabled, False
        try:
            yield
        finally:
            self.tfa_enabled = previous

    def attach(self, blocks: nn.ModuleList) -> list[torch.utils.hooks.RemovableHandle]:
        """Hook every block of ``blocks`` (a frozen decoder's ``up_blocks``); returns the removable handles."""
        if len(blocks) != len(self.sfa):
            raise ValueError(f"{len(self.sfa)} adapters cannot attach to {len(blocks)} decoder blocks")
        # partial over a bound method, not a closure: deepcopy and pickle (Ray) carry it to the copy
        return [block.register_forward_hook(partial(self._hook, i)) for i, block in enumerate(blocks)]

    def _hook(self, index: int, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if self._guidance is None:
            raise RuntimeError("a guided decoder ran outside DecoderAdapters.guidance(...)")
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(self.adapt, index, output, self._guidance[index], self._num_frames, use_reentrant=False)
        return self.adapt(index, output, self._guidance[index], self._num_frames)

    @contextmanager
    def guidance(self, maps: Sequence[torch.Tensor], num_frames: int) -> Iterator[None]:
        """Run the hooked decoder with ``maps`` (one ``(B·T, Cg_i, H_i, W_i)`` per block) for ``T = num_frames``."""
        if len(maps) != len(self.sfa):
            raise ValueError(f"expected {len(self.sfa)} guidance maps, got {len(maps)}")
        previous = self._guidance, self._num_frames
        self._guidance, self._num_frames = maps, num_frames
        try:
            yield
        finally:
            self._guidance, self._num_frames = previous

    def enable_gradient_checkpointing(self, network: ModelMixin) -> None:
        """Checkpoint the frozen diffusers ``network`` these adapters are attached to, and the adapters: the
        backward pass recomputes each block (and adapter) instead of keeping its activations."""
        network.enable_gradient_checkpointing(self._checkpointed_call)
        self.checkpointing = True

    def _checkpointed_call(self, module: nn.Module, *args) -> torch.Tensor:
        """diffusers' ``gradient_checkpointing_func``: ``module(*args)``, recomputed under this call's guidance."""
        maps, frames = self._guidance, self._num_frames

        def contexts():
            return nullcontext(), (self.guidance(maps, frames) if maps is not None else nullcontext())

        return checkpoint(module.__call__, *args, use_reentrant=False, context_fn=contexts)
