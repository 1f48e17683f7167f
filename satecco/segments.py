"""Segments: the unit of work of the distributed engine.

A segment is a run of consecutive windows of one video (see :func:`satecco.windows.plan_segments`).
A worker runs some of the pipeline's parts (``encode``, ``denoise``, ``decode``) on all its windows;
the worker that runs ``decode`` also cross-fades the windows: it finishes the frames only this segment
covers and hands back its share of the blend of the frames it shares with its neighbours, which the
join completes (:func:`satecco.windows.blend_seam`). No window is computed twice, and the frames come
out as the in-process engine computes them for the whole video.
"""

from __future__ import annotations

import numpy as np

from satecco.pipeline import PARTS, SATeCoPipeline
from satecco.windows import TemporalBlender, quantize


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
        ``{"frames": (emit_stop - emit_start, sh, sw, 3) uint8}`` and the shared frames' share of the
        blend: ``head`` / ``tail`` ``(F, sh, sw, 3)`` float32 weighted sums with ``head_weights`` /
        ``tail_weights`` ``(F,)``, for frames ``starts[0]..emit_start`` and ``emit_stop..starts[-1] + T``.
    """
    carried = carried or {}
    if "decode" not in parts:
        outputs = [pipeline.run_window(frames, int(start), seed, parts, {k: v[i] for k, v in carried.items()})
                   for i, (frames, start) in enumerate(zip(windows, starts, strict=True))]
        key = next(iter(outputs[0]))
        return {key: np.stack([out[key] for out in outputs])}
    blender, kept, shared = TemporalBlender(overlap), [], []
    emit_start, emit_stop = emit

    def take(done: list[tuple[int, np.ndarray, float]]) -> None:
        for index, total, weight in done:  # owned frames leave float as soon as they are final
            if emit_start <= index < emit_stop:
                kept.append(quantize(total / weight))
            else:
                shared.append((index, total, weight))

    for i, (frames, start) in enumerate(zip(windows, starts, strict=True)):
        out = pipeline.run_window(frames, int(start), seed, parts, {k: v[i] for k, v in carried.items()})
        take(blender.add_sums(int(start), out["frames"]))
    take(blender.finish_sums())
    if len(kept) != emit_stop - emit_start:
        raise AssertionError(f"segment kept {len(kept)} frames, expected {emit_stop - emit_start}")
    result = {"frames": np.stack(kept)}
    for side, chosen in (("head", [s for s in shared if s[0] < emit_start]),
                         ("tail", [s for s in shared if s[0] >= emit_stop])):
        result[side] = (np.stack([total for _, total, _ in chosen]) if chosen
                        else np.zeros((0, *kept[0].shape), np.float32))
        result[f"{side}_weights"] = np.array([weight for _, _, weight in chosen], dtype=np.float64)
    return result
