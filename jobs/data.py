"""The training data as a Ray Data dataset: one row per (clip, start) window, loaded, cropped, flipped
and degraded in map tasks; each worker reads its shard with ``iter_torch_batches``."""

from __future__ import annotations

import numpy as np

from satecco.errors import VideoError
from satecco.training.config import TrainConfig
from satecco.training.data import Clip, ClipCache, find_clips, make_sample, window_starts

#: Rows per pass over the training data, at least, and rows per block (see training_dataset).
MIN_ROWS_PER_PASS = 4096
ROWS_PER_BLOCK = 64

#: Decoded video files, kept by each Ray worker process across the map tasks it runs (Ray reuses a
#: task's process). An actor pool would keep them too, but on a small machine its actors wait forever
#: for the CPUs the training workers hold.
CLIP_CACHE = ClipCache()


class LoadSample:
    """Map function: ``{"clip", "start"}`` -> ``{"hr": (L, c, c, 3), "lr": (L, c/4, c/4, 3)}`` uint8.

    Each call draws its crop and flips from fresh OS entropy, so every epoch sees new crops.
    """

    def __init__(self, clips: list[Clip], config: TrainConfig):
        self.clips, self.config = clips, config

    def __call__(self, row: dict) -> dict[str, np.ndarray]:
        config = self.config
        return make_sample(self.clips[row["clip"]], int(row["start"]), config.frames, config.crop,
                           np.random.default_rng(), degradation=config.degradation, read=CLIP_CACHE)


def find_training_clips(config: TrainConfig) -> list[Clip]:
    """Every clip of every ``config.data`` path; ``ValueError`` naming the path when none is usable."""
    if not config.data:
        raise ValueError("no training data: give --data PATH (REDS or Vimeo-90K root, videos, folders)")
    try:
        clips = [clip for path in config.data for clip in find_clips(path)]
    except VideoError as error:  # one unreadable training file fails the run before it starts
        raise ValueError(str(error)) from error
    if not window_starts(clips, config.frames):
        raise ValueError(f"{', '.join(config.data)}: no clip has {config.frames} frames")
    return clips


def training_dataset(config: TrainConfig, clips: list[Clip]):
    """A shuffled ``ray.data.Dataset`` of training windows (shuffled again on every epoch)."""
    import ray

    items = window_starts(clips, config.frames)
    # Each pass over the dataset starts a Ray Data execution (seconds on a small machine): a small data
    # set is listed several times per pass, so that a pass feeds hundreds of steps rather than a few.
    items = items * max(1, -(-MIN_ROWS_PER_PASS // len(items)))
    # Shuffled here once and in blocks of ROWS_PER_BLOCK rows whose order changes on every pass (Ray
    # Data's cheap shuffle): random_shuffle's all-to-all over Ray Data's default 200 blocks costs
    # hundreds of tasks per pass, seconds of a small machine. Every sample draws its own crop anyway.
    items = [items[i] for i in np.random.default_rng().permutation(len(items))]
    blocks = max(1, len(items) // ROWS_PER_BLOCK)
    return (ray.data.from_items(items, override_num_blocks=blocks).randomize_block_order()
            .map(LoadSample(clips, config), num_cpus=0.25))
