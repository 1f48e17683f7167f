"""The fingerprint of a run's pixels: everything that changes what a part file holds.

Parts of an interrupted Ray run are reused by a rerun only when they were made the same way. The
fingerprint hashes the model files (the SATeCo weights file and every file of the base model folder,
by content), the model and sampling settings (preset, method, steps, start step, sampler, schedule
overrides, ablation switches, tile, tile overlap, dtype, device), the cutting and writing settings (seed, window, overlap, codec, CRF) and the
package version. Torch-free: the Ray driver computes it while planning.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import satecco
from satecco.inputs import VideoSettings
from satecco.presets import ModelSpec

#: Settings that do not change the pixels of a part (where it goes, whether it replaces an output).
#: batch and compile give the same pixels within float rounding.
NOT_PIXELS = ("suffix", "overwrite", "random_weights", "batch", "compile")


def fingerprint(spec: ModelSpec, settings: VideoSettings) -> str:
    """A short hex digest of what makes a part's pixels; equal settings and files give equal digests."""
    spec = spec.with_embedded_default()
    described = {**asdict(spec), **asdict(settings), "version": satecco.__version__,
                 "base_model": files_digest(spec.base_model), "weights": files_digest(spec.weights)}
    for name in NOT_PIXELS:
        described.pop(name, None)
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:12]


def files_digest(path: str | None) -> str | None:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and bytes, in name order)."""
    if path is None:
        return None
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        digest.update(_file_digest(str(file), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """One file's SHA-256, read once per process while its size and mtime stay the same."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
