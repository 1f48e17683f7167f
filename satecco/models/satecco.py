"""The SATeCo model: a frozen diffusers UNet and VAE with SATeCo's trainable modules around them.

Paper Fig. 2: upscaler -> VAE encoder -> (E_z guidance, SFA/TFA-guided UNet) -> SFA/TFA-guided VAE
decoder -> refiner. This module owns the networks and how they are wired; the sampling loop lives in
:mod:`satecco.diffusion` and the order of steps in :mod:`satecco.pipeline`.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from einops import rearrange
from torch import nn

from satecco.models.adapters import DecoderAdapters
from satecco.models.latent_encoder import LatentEncoder
from satecco.models.refiner import VideoRefiner
from satecco.models.upscaler import VideoUpscaler

#: SATeCo's own modules, the only ones with trainable parameters.
TRAINABLE = ("upscaler", "latent_encoder", "unet_adapters", "vae_adapters", "refiner")


def decoder_geometry(block_out_channels: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output width and resolution level of each decoder block of a diffusers UNet or VAE.

    Decoder block ``i`` (of ``n``) upsamples at its end except the last one, so its output sits at
    level ``max(n - 2 - i, 0)``, i.e. ``1 / 2^level`` of the input (latent or image) resolution.
    """
    n = len(block_out_channels)
    return tuple(reversed(block_out_channels)), tuple(max(n - 2 - i, 0) for i in range(n))


class SATeCo(nn.Module):
    """Frozen ``unet`` and ``vae`` plus SATeCo's modules, with the adapters hooked into both decoders.

    Args:
        unet: diffusers ``UNet2DConditionModel`` (frozen).
        vae: diffusers ``AutoencoderKL`` (frozen).
        upscaler, latent_encoder, unet_adapters, vae_adapters, refiner: SATeCo's modules.
        prompt_embeds: ``(1, S, D)`` text embedding of the fixed prompt the UNet cross-attends to.
    """

    def __init__(self, unet: UNet2DConditionModel, vae: AutoencoderKL, upscaler: VideoUpscaler,
                 latent_encoder: LatentEncoder, unet_adapters: DecoderAdapters, vae_adapters: DecoderAdapters,
                 refiner: VideoRefiner, prompt_embeds: torch.Tensor):
        super().__init__()
        self.unet = unet.requires_grad_(False).eval()
        self.vae = vae.requires_grad_(False).eval()
        self.upscaler = upscaler
        self.latent_encoder = latent_encoder
        self.unet_adapters = unet_adapters
        self.vae_adapters = vae_adapters
        self.refiner = refiner
        self.register_buffer("prompt_embeds", prompt_embeds, persistent=False)
        self.unet_adapters.attach(self.unet.up_blocks)
        self.vae_adapters.attach(self.vae.decoder.up_blocks)
        _, vae_levels = decoder_geometry(tuple(vae.config.block_out_channels))
        #: encoder feature level that guides each VAE decoder block
        self.vae_guidance_levels = vae_levels

    @property
    def scale(self) -> int:
        return self.upscaler.config.scale

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def spatial_multiple(self) -> int:
        """HR frame sizes are padded to a multiple of this so every latent level divides evenly."""
        return self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the frozen UNet's and VAE decoder's blocks and their adapters in the backward pass, so
        that training keeps only each checkpointed block's inputs (issue 16: sd21 stages on one GPU)."""
        self.unet_adapters.enable_gradient_checkpointing(self.unet)
        self.vae_adapters.enable_gradient_checkpointing(self.vae)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in TRAINABLE}

    def encode(self, video: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """VAE-encode ``X_u`` ``(B, T, 3, H, W)``.

        Returns the scaled latent ``Z`` ``(B·T, c, H/f, W/f)`` (the posterior mode) and the encoder
        features at every level ``l``: ``(B·T, C_l, H/2^l, W/2^l)``, taken after the last resnet of
        each encoder down block, before its downsampler.
        """
        features: list[torch.Tensor] = []
        hooks = [block.resnets[-1].register_forward_hook(lambda m, a, out: features.append(out))
                 for block in self.vae.encoder.down_blocks]
        try:
            posterior = self.vae.encode(rearrange(video, "b t c h w -> (b t) c h w")).latent_dist
        finally:
            for hook in hooks:
                hook.remove()
        latents = posterior.mode()
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return (latents - shift) * self.vae.config.scaling_factor, features

    def predict_noise(self, noisy: torch.Tensor, timestep: torch.Tensor, guidance: list[torch.Tensor],
                      num_frames: int) -> torch.Tensor:
        """UNet prediction for ``noisy`` ``(B·T, c, h, w)`` with SFA/TFA guided by ``G = E_z(Z)``."""
        context = self.prompt_embeds.to(noisy.dtype).expand(noisy.shape[0], -1, -1)
        with self.unet_adapters.guidance(guidance, num_frames):
            return self.unet(noisy, timestep, encoder_hidden_states=context).sample

    def decode(self, latents: torch.Tensor, encoder_features: list[torch.Tensor], num_frames: int) -> torch.Tensor:
        """Guided VAE decode of ``Z_0`` ``(B·T, c, h, w)`` -> ``X_d`` ``(B, T, 3, H, W)``."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        guidance = [encoder_features[level] for level in self.vae_guidance_levels]
        with self.vae_adapters.guidance(guidance, num_frames):
            frames = self.vae.decode(latents / self.vae.config.scaling_factor + shift).sample
        return rearrange(frames, "(b t) c h w -> b t c h w", t=num_frames)
