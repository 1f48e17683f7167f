"""The baselines that ``satecco upscale --method`` runs beside SATeCo, with the pipeline's interface.

- ``bicubic``: MATLAB's ``imresize(frame, 4)`` (bicubic, Keys ``a = -0.5``, symmetric borders, uint8 out
  rounded as MATLAB rounds), the interpolation the SR literature's "Bicubic" rows use, through
  :func:`satecco.metrics.imresize.imresize`; torch's bicubic (``F.interpolate``) differs from it at the
  borders and in rounding, so it is not used here.
- ``framewise``: SATeCo with TFA switched off (:meth:`~satecco.models.adapters.DecoderAdapters.without_tfa`)
  and every frame upscaled on its own (a window of one frame, so the TMSA upscaler sees no neighbour
  either): frame-wise diffusion SR with the same networks and weights.
- ``upscaler``: SATeCo's stage-1 video upscaler alone, ``X_u`` (paper Fig. 2 without the diffusion
  branch and the refiner), on the same windows and tiles as SATeCo.

All expose what the engines use from :class:`~satecco.pipeline.SATeCoPipeline`: ``scale``, ``batch``,
``run_window(frames, first_frame, seed, parts, carried)``, ``run_windows(windows, starts, seed, parts,
carried)`` and ``upscale_window(frames, first_frame, seed)``.
Each output frame of ``bicubic`` and ``framewise`` depends on its own input frame only, so their windows
need no overlap (:data:`~satecco.presets.FRAME_BY_FRAME`); the upscaler's TMSA sees the whole window.
"""

from __future__ import annotations

import numpy as np
import torch

from satecco.metrics.imresize import imresize
from satecco.pipeline import SATeCoPipeline
from satecco.segments import PARTS


class WindowByWindow:
    """``run_windows`` one window after another, for the baselines (``framewise`` batches inside a window)."""

    batch = 1

    def run_windows(self, windows: np.ndarray, starts, seed: int, parts: tuple[str, ...] = PARTS,
                    carried: dict[str, np.ndarray] | None = None) -> list[dict[str, np.ndarray]]:
        """``run_window`` on each of ``windows`` ``(W, T, h, w, 3)``; ``carried`` ``(W, ...)`` per key."""
        carried = carried or {}
        return [self.run_window(frames, int(start), seed, parts, {key: value[i] for key, value in carried.items()})
                for i, (frames, start) in enumerate(zip(windows, starts, strict=True))]


class BicubicUpscaler(WindowByWindow):
    """MATLAB-style bicubic ×``scale``; no model, no randomness (``seed`` is ignored).

    In a Ray graph split into several actor pools, the parts before ``decode`` hand on an empty
    placeholder and the ``decode`` part interpolates the LR window, which travels with every segment.
    """

    def __init__(self, scale: int = 4):
        self.scale = scale

    def run_window(self, frames: np.ndarray, first_frame: int, seed: int, parts: tuple[str, ...] = PARTS,
                   carried: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``(T, h, w, 3)`` uint8 -> ``{"frames": (T, s·h, s·w, 3) float32}`` with whole-number values in
        [0, 255] (``decode`` in ``parts``), else ``{"latents" | "denoised": (1, T, 0) float32}``."""
        if "decode" not in parts:
            key = "denoised" if "denoise" in parts else "latents"
            return {key: np.zeros((1, len(frames), 0), np.float32)}
        if frames.dtype == np.uint16:  # deep sources: the same filter on [0, 255] floats, unrounded
            return {"frames": np.stack([imresize(frame / 257.0, float(self.scale)) for frame in frames]
                                       ).clip(0, 255).astype(np.float32)}
        return {"frames": np.stack([imresize(frame, float(self.scale)) for frame in frames]).astype(np.float32)}

    def upscale_window(self, frames: np.ndarray, first_frame: int, seed: int) -> np.ndarray:
        """``(T, h, w, 3)`` uint8 -> ``(T, s·h, s·w, 3)`` float32 in [0, 255]."""
        return self.run_window(frames, first_frame, seed)["frames"]


class FramewisePipeline(WindowByWindow):
    """SATeCo without temporal alignment: ``pipeline`` run on one frame at a time with TFA off.

    Frame ``i`` keeps its absolute index (and so its noise), so its output is exactly what a
    one-frame video of it would give, whatever window it arrives in.
    """

    def __init__(self, pipeline: SATeCoPipeline):
        self.pipeline = pipeline
        self.scale = pipeline.scale

    def run_window(self, frames: np.ndarray, first_frame: int, seed: int, parts: tuple[str, ...] = PARTS,
                   carried: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """As :meth:`SATeCoPipeline.run_window`: ``frames`` ``(T, h, w, 3)`` uint8, ``carried`` and the
        latent outputs ``(P, T, c, h', w')`` per key, ``frames`` output ``(T, sh, sw, 3)`` float32."""
        # each frame a window of its own: (T, P, 1, c, h', w') per key; the pipeline batches them
        carried = {key: value.swapaxes(0, 1)[:, :, None] for key, value in (carried or {}).items()}
        model = self.pipeline.model
        with model.unet_adapters.without_tfa(), model.vae_adapters.without_tfa():
            outputs = self.pipeline.run_windows(frames[:, None], range(first_frame, first_frame + len(frames)), seed,
                                                parts, carried)
        key = next(iter(outputs[0]))
        return {key: np.concatenate([out[key] for out in outputs], axis=0 if key == "frames" else 1)}

    def upscale_window(self, frames: np.ndarray, first_frame: int, seed: int) -> np.ndarray:
        """``(T, h, w, 3)`` uint8 -> ``(T, s·h, s·w, 3)`` float32 in [0, 255]."""
        return self.run_window(frames, first_frame, seed)["frames"]


class UpscalerPipeline(WindowByWindow):
    """``X_u`` alone: the video upscaler of ``pipeline``'s model on the window, tile by tile (the tiles
    blended as SATeCo's are). Deterministic (``seed`` is ignored); all its work is in ``decode``."""

    def __init__(self, pipeline: SATeCoPipeline):
        self.pipeline = pipeline
        self.scale = pipeline.scale

    def run_window(self, frames: np.ndarray, first_frame: int, seed: int, parts: tuple[str, ...] = PARTS,
                   carried: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``(T, h, w, 3)`` uint8 -> ``{"frames": (T, s·h, s·w, 3) float32}`` in [0, 255] (``decode`` in
        ``parts``), else ``{"latents" | "denoised": (1, T, 0) float32}``."""
        if "decode" not in parts:  # as the bicubic baseline's: an empty entry; the LR window travels on
            return BicubicUpscaler().run_window(frames, first_frame, seed, parts)
        pipeline = self.pipeline
        work = pipeline.prepare(frames, first_frame, seed)
        with torch.inference_mode():
            tiles = [pipeline.model.upscaler(pipeline.tile_inputs(work, index)[0].to(pipeline.device, pipeline.dtype))
                     for index in range(len(work.boxes))]
        return {"frames": pipeline.merge(work, [tile.clamp(-1, 1) for tile in tiles])}

    def upscale_window(self, frames: np.ndarray, first_frame: int, seed: int) -> np.ndarray:
        """``(T, h, w, 3)`` uint8 -> ``(T, s·h, s·w, 3)`` float32 in [0, 255]."""
        return self.run_window(frames, first_frame, seed)["frames"]
