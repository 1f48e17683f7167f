"""The SATeCo inference steps (paper Fig. 2) over one window of frames, with spatial tiling.

``SATeCoPipeline`` holds no ``nn.Module`` of its own: it moves data through :class:`SATeCo` in
numbered steps and handles padding, tiles and noise. The steps come in three parts that a
distributed engine may place on different workers, because what passes between them is small
(latents, not pixels or feature maps):

- ``encode``: 1. upscaler ``X_u``, 2. VAE encoder ``Z`` (+ encoder features);
- ``denoise``: 3. latent encoder ``G``, 4. SFA/TFA-guided denoising ``Z_0``;
- ``decode``: 5. SFA/TFA-guided VAE decoder ``X_d``, 6. refiner ``X_H`` — it recomputes steps 1–2
  when ``encode`` ran elsewhere (the upscaler and the VAE encoder cost far less than shipping
  full-resolution features between machines).

Noise is drawn per absolute frame index from the run's seed, on the CPU, for the whole padded
frame, so a frame gets the same noise whichever window, tile, worker or device processes it.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from satecco.colorfix import color_fix_frames
from satecco.diffusion import denoise
from satecco.layout import frames_to_model
from satecco.models.satecco import SATeCo
from satecco.presets import DiffusionConfig
from satecco.segments import PARTS
from satecco.windows import ramp, tile_starts


def encode_steps(model: SATeCo, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Steps 1–2. ``lr`` ``X_L`` ``(B, T, 3, h, w)`` -> ``X_u`` ``(B, T, 3, sh, sw)``, ``Z`` ``(B·T, c, sh/f, sw/f)``,
    encoder features."""
    # 1. video upscaler: X_u
    upscaled = model.upscaler(lr)
    # 2. VAE encoder: latent Z and the encoder features that guide the VAE decoder
    latents, features = model.encode(upscaled)
    return upscaled, latents, features


def denoise_steps(model: SATeCo, diffusion: DiffusionConfig, latents: torch.Tensor, noise: torch.Tensor,
                  frames: int) -> torch.Tensor:
    """Steps 3–4. ``Z`` and ``noise`` ``(B·T, c, h, w)`` (``T = frames``) -> ``Z_0`` ``(B·T, c, h, w)``."""
    # 3. latent encoder: guidance G for every UNet decoder block
    guidance = model.latent_encoder(latents)

    # 4. SFA/TFA-guided denoising of noised Z
    def predict(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model.predict_noise(z, t, guidance, frames)

    return denoise(predict, latents, noise, diffusion)


def decode_steps(model: SATeCo, upscaled: torch.Tensor, denoised: torch.Tensor, features: list[torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 5–6. ``Z_0`` ``(B·T, c, h, w)`` -> ``X_d`` and ``X_H`` ``(B, T, 3, sh, sw)`` (not clamped)."""
    # 5. SFA/TFA-guided VAE decoder: X_d
    decoded = model.decode(denoised, features, upscaled.shape[1])
    # 6. refiner: X_H
    return decoded, model.refiner(upscaled, decoded)


def run_steps(model: SATeCo, diffusion: DiffusionConfig, lr: torch.Tensor, noise: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1–6 on ``lr`` ``(B, T, 3, h, w)`` with ``noise`` shaped like ``Z`` ``(B·T, c, h', w')``:
    ``X_u``, ``X_d`` and ``X_H``, each ``(B, T, 3, 4h, 4w)``. What the training stages validate and
    train the refiner on; :class:`SATeCoPipeline` runs the same steps tile by tile."""
    upscaled, latents, features = encode_steps(model, lr)
    denoised = denoise_steps(model, diffusion, latents, noise.to(latents), lr.shape[1])
    return upscaled, *decode_steps(model, upscaled, denoised, features)


def compile_model(model: SATeCo, backend: str = "inductor") -> None:
    """``torch.compile`` ``model``'s guided UNet step and guided VAE decoder, in place (the adapters'
    hooks and guidance run inside the compiled code). The first call of each, for each new input shape,
    compiles; the first one says on stderr how long it took."""
    model.predict_noise = _timed_first_call(torch.compile(model.predict_noise, backend=backend, dynamic=False),
                                            "the UNet step")
    model.decode = _timed_first_call(torch.compile(model.decode, backend=backend, dynamic=False),
                                     "the VAE decoder")


def _timed_first_call(function, what: str):
    first = [True]

    @functools.wraps(function)
    def timed(*args, **kwargs):
        if not first[0]:
            return function(*args, **kwargs)
        first[0], started = False, time.perf_counter()
        result = function(*args, **kwargs)
        print(f"satecco: torch.compile of {what}: {time.perf_counter() - started:.1f} s (once per process "
              f"and input shape)", file=sys.stderr)
        return result

    return timed


def frame_noise(seed: int, frame_index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise of ``shape`` for one frame, a pure function of ``(seed, frame_index)``."""
    state = int(np.random.SeedSequence([seed, frame_index]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.randn(shape, generator=torch.Generator().manual_seed(state))


def window_noise(seed: int, first_frame: int, frames: int, shape: tuple[int, ...]) -> torch.Tensor:
    """:func:`frame_noise` of frames ``first_frame .. first_frame + frames - 1``: ``(frames, *shape)``."""
    return torch.stack([frame_noise(seed, first_frame + i, shape) for i in range(frames)])


@dataclass
class WindowTiles:
    """One window, padded and cut into tiles.

    ``lr`` ``(1, T, 3, ph, pw)`` in [-1, 1]; ``noise`` ``(T, c, ph·s/f, pw·s/f)``; ``boxes`` the LR
    ``(y, x)`` of each ``tile`` ``(th, tw)``; ``size`` the unpadded LR ``(h, w)``.
    """

    lr: torch.Tensor
    noise: torch.Tensor
    boxes: list[tuple[int, int]]
    tile: tuple[int, int]
    size: tuple[int, int]
    latent_per_pixel: float


class SATeCoPipeline:
    """Upscale windows of frames ×``model.scale``.

    Args:
        model: the SATeCo model (moved to ``device``/``dtype`` here).
        diffusion: schedule, sampler, steps and start step.
        device, dtype: where and in what precision to run.
        tile: LR tile size in pixels (``None``: whole frames).
        tile_overlap: LR pixels shared by neighbouring tiles.
        color_fix: ``none``, ``wavelet`` or ``adain`` (:mod:`satecco.colorfix`), on every whole output frame.
        batch: tiles (of one window or of several, :meth:`run_windows`) per forward pass.
        compile: a ``torch.compile`` backend for the UNet step and the VAE decoder (:func:`compile_model`);
            None: eager.
    """

    def __init__(self, model: SATeCo, diffusion: DiffusionConfig, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, tile: int | None = None, tile_overlap: int = 16,
                 color_fix: str = "none", batch: int = 1, compile: str | None = None):  # noqa: A002
        if batch < 1:
            raise ValueError(f"batch must be at least 1; got {batch}")
        self.batch = batch
        self.model = model.to(device=device, dtype=dtype).eval()
        if compile:
            compile_model(self.model, compile)
        self.color_fix = color_fix
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

    # -- the three parts, on one tile ------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """:func:`encode_steps` on ``lr`` ``(1, T, 3, h, w)``."""
        return encode_steps(self.model, lr.to(self.device, self.dtype))

    @torch.inference_mode()
    def denoise(self, latents: torch.Tensor, noise: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """:func:`denoise_steps` on windows of ``frames`` frames (default: one window): ``Z`` and ``noise``
        ``(B·T, c, h, w)`` -> ``Z_0`` ``(B·T, c, h, w)``."""
        return denoise_steps(self.model, self.diffusion, latents.to(self.device, self.dtype),
                             noise.to(self.device, self.dtype), frames or latents.shape[0])

    @torch.inference_mode()
    def decode(self, lr: torch.Tensor, denoised: torch.Tensor, upscaled: torch.Tensor | None = None,
               features: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Steps 5–6. ``Z_0`` ``(B·T, c, h, w)`` of ``lr`` ``(B, T, 3, h, w)`` -> ``X_H`` ``(B, T, 3, sh, sw)`` in [-1, 1].

        ``upscaled`` and ``features`` come from :meth:`encode` on the same ``lr``; without them steps
        1–2 are recomputed here.
        """
        if upscaled is None or features is None:
            upscaled, _, features = self.encode(lr)
        return decode_steps(self.model, upscaled, denoised.to(self.device, self.dtype), features)[1].clamp(-1, 1)

    # -- windows and tiles -------------------------------------------------------------------------
    def prepare(self, frames: np.ndarray, first_frame: int, seed: int) -> WindowTiles:
        """Pad ``(T, h, w, 3)`` uint8 frames numbered from ``first_frame``, draw their noise, place the tiles."""
        count, height, width, _ = frames.shape
        lr = frames_to_model(frames)
        pad_h, pad_w = (-height) % self.lr_multiple, (-width) % self.lr_multiple
        if pad_h or pad_w:
            lr = rearrange(F.pad(rearrange(lr, "1 t c h w -> t c h w"), (0, pad_w, 0, pad_h), mode="replicate"),
                           "t c h w -> 1 t c h w")
        ph, pw = height + pad_h, width + pad_w
        factor = self.scale / self.model.vae_scale  # LR pixels -> latent pixels
        latent_shape = (self.model.vae.config.latent_channels, round(ph * factor), round(pw * factor))
        noise = window_noise(seed, first_frame, count, latent_shape)
        tile_h = ph if self.tile is None else min(self.tile, ph)
        tile_w = pw if self.tile is None else min(self.tile, pw)
        boxes = [(y, x) for y in tile_starts(ph, tile_h, self.tile_overlap)
                 for x in tile_starts(pw, tile_w, self.tile_overlap)]
        return WindowTiles(lr, noise, boxes, (tile_h, tile_w), (height, width), factor)

    @staticmethod
    def tile_inputs(work: WindowTiles, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """LR ``(1, T, 3, th, tw)`` and noise ``(T, c, th·s/f, tw·s/f)`` of tile ``index``."""
        (y, x), (th, tw), k = work.boxes[index], work.tile, work.latent_per_pixel
        return (work.lr[:, :, :, y:y + th, x:x + tw],
                work.noise[:, :, round(y * k):round((y + th) * k), round(x * k):round((x + tw) * k)])

    def merge(self, work: WindowTiles, outputs: list[torch.Tensor]) -> np.ndarray:
        """Feather-blend tile outputs ``X_H`` ``(1, T, 3, th·s, tw·s)`` -> ``(T, h·s, w·s, 3)`` float32 in [0, 255]."""
        s, (th, tw) = self.scale, work.tile
        _, count, _, ph, pw = work.lr.shape
        total = torch.zeros(count, 3, ph * s, pw * s)
        weight = torch.zeros(1, 1, ph * s, pw * s)
        fade = self.tile_overlap * s
        mask = torch.from_numpy(np.outer(ramp(th * s, fade), ramp(tw * s, fade)))[None, None]
        for (y, x), out in zip(work.boxes, outputs, strict=True):
            total[:, :, y * s:(y + th) * s, x * s:(x + tw) * s] += out[0].float().cpu() * mask
            weight[:, :, y * s:(y + th) * s, x * s:(x + tw) * s] += mask
        height, width = work.size
        video = (total / weight)[:, :, :height * s, :width * s]
        return rearrange((video + 1.0) * 127.5, "t c h w -> t h w c").numpy()

    def run_window(self, frames: np.ndarray, first_frame: int, seed: int, parts: tuple[str, ...] = PARTS,
                   carried: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run ``parts`` (consecutive, from :data:`PARTS`) on one window, every tile.

        ``carried`` holds what earlier parts produced elsewhere: ``latents`` for ``denoise``,
        ``denoised`` for ``decode`` (``(P, T, c, h, w)`` float32, one entry per tile). Returns what the
        last part produced: ``latents``, ``denoised``, or ``frames`` ``(T, sh, sw, 3)`` float32 in [0, 255].
        """
        carried = {key: value[None] for key, value in (carried or {}).items()}
        return self.run_windows(frames[None], [first_frame], seed, parts, carried)[0]

    def run_windows(self, windows: np.ndarray, starts, seed: int, parts: tuple[str, ...] = PARTS,
                    carried: dict[str, np.ndarray] | None = None) -> list[dict[str, np.ndarray]]:
        """:meth:`run_window` on each of ``windows`` ``(W, T, h, w, 3)`` (first frames ``starts``), with up
        to :attr:`batch` tiles, of one window or of several, in each forward pass; ``carried``:
        ``(W, P, T, c, h', w')`` per key. Each window's tiles keep their own noise, so the result is
        one-at-a-time's within float rounding."""
        carried = carried or {}
        works = [self.prepare(frames, int(start), seed) for frames, start in zip(windows, starts, strict=True)]
        items = [(w, index) for w, work in enumerate(works) for index in range(len(work.boxes))]
        produced: list[dict[str, list]] = [{"latents": [], "denoised": [], "frames": []} for _ in works]
        for first in range(0, len(items), self.batch):
            chunk = items[first:first + self.batch]
            inputs = [self.tile_inputs(works[w], index) for w, index in chunk]
            given = {key: torch.from_numpy(np.concatenate([value[w][index] for w, index in chunk]))
                     for key, value in carried.items()}
            key, output = self._run_tiles(torch.cat([lr for lr, _ in inputs]),
                                          torch.cat([noise for _, noise in inputs]), parts, given)
            for (w, _), item in zip(chunk, output.split(1 if key == "frames" else windows.shape[1]), strict=True):
                produced[w][key].append(item if key == "frames" else item.float().cpu().numpy())
        if "decode" in parts:
            return [{"frames": color_fix_frames(self.merge(work, done["frames"]), frames, self.color_fix)}
                    for work, done, frames in zip(works, produced, windows, strict=True)]
        key = "denoised" if "denoise" in parts else "latents"
        return [{key: np.stack(done[key])} for done in produced]

    def _run_tiles(self, lr: torch.Tensor, noise: torch.Tensor, parts: tuple[str, ...],
                   given: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
        """``parts`` on a batch of tiles: ``lr`` ``(B, T, 3, th, tw)``, ``noise`` and ``given`` latents
        ``(B·T, c, h, w)``; returns what the last part made: ``latents`` or ``denoised`` ``(B·T, c, h, w)``,
        or ``frames`` ``X_H`` ``(B, T, 3, sh, sw)``."""
        upscaled = features = None
        latents, denoised = given.get("latents"), given.get("denoised")
        if "encode" in parts:
            upscaled, latents, features = self.encode(lr)
        if "denoise" in parts:
            denoised = self.denoise(latents, noise, lr.shape[1])
        elif "decode" not in parts:
            return "latents", latents
        if "decode" not in parts:
            return "denoised", denoised
        return "frames", self.decode(lr, denoised, upscaled, features)

    def upscale_window(self, frames: np.ndarray, first_frame: int, seed: int) -> np.ndarray:
        """``(T, h, w, 3)`` uint8 frames numbered from ``first_frame`` -> ``(T, s·h, s·w, 3)`` float32 in [0, 255]."""
        return self.run_window(frames, first_frame, seed)["frames"]
