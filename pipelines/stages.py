"""The Ray engine's stages, in the order a segment meets them: decode tasks, SATeCo stage actors, part
writers (the Ray Data graph), then the join task that makes each video from its parts.

Every stage works on one segment per row and passes error rows through untouched, so one bad video
fails alone. Model stages do no file I/O; reading and writing have their own stages.
"""

from __future__ import annotations

import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from satecco import storage
from satecco.errors import SateccoError, input_error
from satecco.presets import ModelSpec
from satecco.segments import JoinPlan, join_parts, save_share, seam_path, write_frames
from satecco.video.picture import Encoding
from satecco.video.read import read_frames


def _failed(row: dict, error: Exception, local: str | None = None) -> dict:
    """``row`` failed with ``error`` (about the input, or ``local``, its fetched copy)."""
    return {**row, "error": input_error(row["video"], error, local=local)}


def decode_segment(row: dict) -> dict:
    """CPU task: read the segment's LR frames and cut them into its windows ``(W, T, h, w, 3)`` uint8
    (uint16 for deep sources)."""
    if row["error"]:
        return row
    started = time.perf_counter()
    starts = np.asarray(row["windows"], dtype=np.int64)
    first, length = int(starts[0]), int(row["length"])
    source = None
    try:
        source = storage.local_copy(row["video"])
        encoding = Encoding.from_json(row["encoding"])
        offset = int(row["offset"])  # the source frame the output's frame 0 is (--frames, --preview)
        frames = np.stack(list(read_frames(source, offset + first, offset + int(starts[-1]) + length,
                                           bits=encoding.bits, deinterlace=bool(row["deinterlace"]))))
        if len(frames) < int(starts[-1]) - first + length:
            raise SateccoError(f"{row['video']}: ended after {first + len(frames)} frames, expected "
                               f"{int(starts[-1]) + length}")
    except Exception as error:  # noqa: BLE001 - reported per video, never stops the run
        return _failed(row, error, local=source)
    windows = np.stack([frames[s - first:s - first + length] for s in starts])
    return {**row, "lr": windows, "busy_decode": time.perf_counter() - started}


class StageActor:
    """Ray actor: runs some of the pipeline's parts on every segment it gets (weights loaded once).

    ``__call__`` takes and returns a numpy batch of one segment; its outputs replace its inputs, so
    only latents travel between actor pools and only uint8 frames leave the last one.
    """

    def __init__(self, spec: ModelSpec, parts: tuple[str, ...], name: str, seed: int, overlap: int,
                 threads: int | str | None = None):
        from satecco.build import build_pipeline

        if threads is not None:
            import torch

            torch.set_num_threads(len(os.sched_getaffinity(0)) if threads == "all" else int(threads))
        self.parts, self.name, self.seed, self.overlap = tuple(parts), name, seed, overlap
        # A model that cannot be built (weights that do not fit, an incomplete --base-model folder) fails
        # every segment with that one reason, instead of a crash that Ray would restart again and again.
        self.pipeline, self.broken = None, ""
        try:
            self.pipeline = build_pipeline(spec)
        except (SateccoError, ValueError, OSError) as error:
            self.broken = f"the {name} stage cannot build its model: {error}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from satecco.segments import run_segment

        row = {key: value[0] for key, value in batch.items()}
        if self.broken and not row["error"]:
            row["error"] = f"{row['video']}: {self.broken}"
        if not row["error"]:
            started = time.perf_counter()
            carried = {key: row.pop(key) for key in ("latents", "denoised") if key in row}
            try:
                out = run_segment(self.pipeline, row["lr"], np.asarray(row["windows"]),
                                  (int(row["emit_start"]), int(row["emit_stop"])), self.seed, self.overlap,
                                  self.parts, carried)
            except Exception as error:  # noqa: BLE001 - one bad segment must not stop the run
                row = _failed(row, error)
            else:
                row.update(out)
                if "decode" in self.parts:
                    row.pop("lr")
                row[f"busy_{self.name}"] = time.perf_counter() - started
        return {key: _batch_of_one(value) for key, value in row.items()}


def _batch_of_one(value) -> np.ndarray:
    """A batch column of one row (ragged arrays and strings included)."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value[None]
    column = np.empty(1, dtype=object)
    column[0] = value
    return column


SEAM_COLUMNS = ("head", "head_weights", "tail", "tail_weights")
BULKY_COLUMNS = ("lr", "frames", "latents", "denoised", *SEAM_COLUMNS)


def write_segment(row: dict) -> dict:
    """CPU task: encode the segment's own frames to its part file, and keep its share of the frames it
    shares with its neighbours beside it (each file atomically, the part last); keep only small columns."""
    if row["error"]:
        return {k: v for k, v in row.items() if k not in BULKY_COLUMNS}
    started = time.perf_counter()
    frames = row.pop("frames")
    shares = {key: row.pop(key) for key in SEAM_COLUMNS}
    part = row["part"]
    try:
        for side in ("head", "tail"):
            if len(shares[side]):
                save_share(seam_path(part, side), shares[side], shares[f"{side}_weights"])
        with storage.atomic_output(part) as local:
            write_frames(local, frames, Fraction(row["frame_rate"]), Encoding.from_json(row["encoding"]))
    except Exception as error:  # noqa: BLE001
        return _failed(row, error)
    return {**row, "frames_written": len(frames), "busy_write": time.perf_counter() - started}


def join_video(join: JoinPlan) -> str | None:
    """CPU task: :func:`~satecco.segments.join_parts`; ``None`` when done, else the error naming the input."""
    try:
        with tempfile.TemporaryDirectory(prefix="satecco-join-") as tmp:
            join_parts(join, Path(tmp))
    except (SateccoError, OSError) as error:
        return input_error(join.source, error)
    return None
