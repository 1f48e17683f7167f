"""The SATeCo inference steps (paper Fig. 2) over one window of frames, with spatial tiling.

``SATeCoPipeline`` holds no ``nn.Module`` of its own: it moves data through :class:`SATeCo` in the
numbered steps of :meth:`SATeCoPipeline.upscale_clip` and handles padding, tiles and noise.
Noise is drawn per absolute frame index from the run's seed, on the CPU, for the whole padded
frame, so a frame gets the same noise whichever window or tile it is processed in, and on any device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from satecco.diffusion import denoise
from satecco.layout import frames_to_model
from satecco.models.satecco import SATeCo
from satecco.presets import DiffusionConfig
from satecco.windows import ramp, tile_starts


def frame_noise(seed: int, frame_index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise of ``shape`` for one frame, a pure function of ``(seed, frame_index)``."""
    state = int(np.random.SeedSequence([seed, frame_index]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.randn(shape, generator=torch.Generator().manual_seed(state))


class SATeCoPipeline:
    """Upscale windows of frames ×``model.scale``.

    Args:
        model: the SATeCo model (moved to ``device``/``dtype`` here).
        diffusion: schedule, sampler, steps and start step.
        device, dtype: where and in what precision to run.
        tile: LR tile size in pixels (``None``: whole frames).
        tile_overlap: LR pixels shared by neighbouring tiles.
    """

    def __init__(self, model: SATeCo, diffusion: DiffusionConfig, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, tile: int | None = None, tile_overlap: int = 16):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.diffusion = diffusion
        self.device = torch.device(device)
        self.dtype = dtype
        self.scale = model.scale
        #: LR frames are padded to a multiple of this so every latent level divides evenly
        self.lr_multiple = max(model.spatial_multiple // model.scale, 1)
        self.tile = None if tile is None else self._round_up(tile)
        self.tile_overlap = self._round_up(tile_overlap) if tile else 0
        if self.tile is not None and self.tile_overlap >= self.tile:
            raise ValueError(f"tile overlap {tile_overlap} must be smaller than the tile size {tile}")

    def _round_up(self, pixels: int) -> int:
        return -(-pixels // self.lr_multiple) * self.lr_multiple

    @torch.inference_mode()
    def upscale_clip(self, lr: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One clip through SATeCo.

        Args:
            lr: ``X_L`` ``(1, T, 3, h, w)`` in [-1, 1], ``h, w`` multiples of ``lr_multiple``.
            noise: ``(T, c, s·h/f, s·w/f)`` latent noise (``s`` scale, ``f`` VAE factor).

        Returns:
            ``X_H`` ``(1, T, 3, s·h, s·w)``.
        """
        model, frames = self.model, lr.shape[1]
        lr = lr.to(self.device, self.dtype)
        # 1. video upscaler: X_u
        upscaled = model.upscaler(lr)
        # 2. VAE encoder: latent Z and the encoder features that guide the VAE decoder
        latents, encoder_features = model.encode(upscaled)
        # 3. latent encoder: guidance G for every UNet decoder block
        guidance = model.latent_encoder(latents)

        # 4. SFA/TFA-guided denoising of noised Z
        def predict(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model.predict_noise(z, t, guidance, frames)

        denoised = denoise(predict, latents, noise.to(self.device, self.dtype), self.diffusion)
        # 5. SFA/TFA-guided VAE decoder: X_d
        decoded = model.decode(denoised, encoder_features, frames)
        # 6. refiner: X_H
        return model.refiner(upscaled, decoded).clamp(-1, 1)

    def upscale_window(self, frames: np.ndarray, first_frame: int, seed: int) -> np.ndarray:
        """``(T, h, w, 3)`` uint8 frames numbered from ``first_frame`` -> ``(T, s·h, s·w, 3)`` float32 in [0, 255]."""
        count, height, width, _ = frames.shape
        lr = frames_to_model(frames)
        pad_h, pad_w = (-height) % self.lr_multiple, (-width) % self.lr_multiple
        if pad_h or pad_w:
            lr = rearrange(F.pad(rearrange(lr, "1 t c h w -> t c h w"), (0, pad_w, 0, pad_h), mode="replicate"),
                           "t c h w -> 1 t c h w")
        ph, pw = height + pad_h, width + pad_w
        factor = self.scale / self.model.vae_scale  # LR pixels -> latent pixels
        latent_shape = (self.model.vae.config.latent_channels, round(ph * factor), round(pw * factor))
        noise = torch.stack([frame_noise(seed, first_frame + i, latent_shape) for i in range(count)])

        tile_h = ph if self.tile is None else min(self.tile, ph)
        tile_w = pw if self.tile is None else min(self.tile, pw)
        s = self.scale
        total = torch.zeros(count, 3, ph * s, pw * s)
        weight = torch.zeros(1, 1, ph * s, pw * s)
        for y in tile_starts(ph, tile_h, self.tile_overlap):
            for x in tile_starts(pw, tile_w, self.tile_overlap):
                out = self.upscale_clip(
                    lr[:, :, :, y:y + tile_h, x:x + tile_w],
                    noise[:, :, round(y * factor):round((y + tile_h) * factor),
                          round(x * factor):round((x + tile_w) * factor)],
                )[0].float().cpu()
                fade = self.tile_overlap * s
                mask = torch.from_numpy(np.outer(ramp(tile_h * s, fade), ramp(tile_w * s, fade)))[None, None]
                total[:, :, y * s:(y + tile_h) * s, x * s:(x + tile_w) * s] += out * mask
                weight[:, :, y * s:(y + tile_h) * s, x * s:(x + tile_w) * s] += mask
        video = (total / weight)[:, :, :height * s, :width * s]
        return rearrange((video + 1.0) * 127.5, "t c h w -> t h w c").numpy()
