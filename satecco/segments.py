"""Segments: the unit of work of the distributed engine.

A segment is a run of consecutive windows of one video (see :func:`satecco.windows.plan_segments`).
A worker runs some of the pipeline's parts (``encode``, ``denoise``, ``decode``) on all its windows;
the worker that runs ``decode`` also cross-fades the windows and keeps the segment's own frames,
which come out exactly as the in-process engine computes them for the whole video.
"""

from __future__ import annotations

import numpy as np

from satecco.layout import quantize
from satecco.pipeline import PARTS, SATeCoPipeline
from satecco.windows import TemporalBlender


def run_segment(pipeline: SATeCoPipeline, windows: np.ndarray, starts: np.ndarray, emit: tuple[int, int],
                seed: int, overlap: int, parts: tuple[str, ...] = PARTS,
                carried: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Run ``parts`` on a segment's windows.

    Args:
        windows: LR windows ``(W, T, h, w, 3)`` uint8.
        starts: first frame index of each window ``(W,)``.
        emit: ``(emit_start, emit_stop)``, the frames this segment owns.
        overlap: window overlap (the cross-fade length).
        carried: outputs of earlier parts, ``(W, P, T, c, h', w')`` float32 per key.

    Returns:
        ``{"latents" | "denoised": (W, P, T, c, h', w')}`` when ``decode`` is not among ``parts``, else
        ``{"frames": (emit_stop - emit_start, sh, sw, 3) uint8}``.
    """
    carried = carried or {}
    if "decode" not in parts:
        outputs = [pipeline.run_window(frames, int(start), seed, parts, {k: v[i] for k, v in carried.items()})
                   for i, (frames, start) in enumerate(zip(windows, starts, strict=True))]
        key = next(iter(outputs[0]))
        return {key: np.stack([out[key] for out in outputs])}
    blender, kept = TemporalBlender(overlap), []
    emit_start, emit_stop = emit

    def keep(done: list[tuple[int, np.ndarray]]) -> None:
        kept.extend(quantize(frame) for index, frame in done if emit_start <= index < emit_stop)

    for i, (frames, start) in enumerate(zip(windows, starts, strict=True)):
        out = pipeline.run_window(frames, int(start), seed, parts, {k: v[i] for k, v in carried.items()})
        keep(blender.add(int(start), out["frames"]))
    keep(blender.finish())
    if len(kept) != emit_stop - emit_start:
        raise AssertionError(f"segment kept {len(kept)} frames, expected {emit_stop - emit_start}")
    return {"frames": np.stack(kept)}
