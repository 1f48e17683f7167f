"""Ray engine against the in-process engine on the same inputs, and memory against video length.

    python benchmarks/bench_engines.py                      # tiny preset, CPU, clips cut from the sample
    python benchmarks/bench_engines.py --videos 4 --frames 24 --size 64x36

Prints frames per second of each engine and their ratio, then the peak resident memory of the
driver plus every Ray worker process (sampled every 0.2 s with psutil) for a short and a 10x longer
input through the Ray engine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import psutil

os.environ.setdefault("RAY_AUTH_MODE", "token")

from pipelines.config import load_pipeline_config  # noqa: E402
from pipelines.upscale import init_ray, run_ray  # noqa: E402
from satecco.build import build_pipeline  # noqa: E402
from satecco.presets import ModelSpec  # noqa: E402
from satecco.upscale import VideoSettings, run_local  # noqa: E402
from satecco.video_io import VideoWriter, read_frames  # noqa: E402

ROOT = Path(__file__).parent.parent


def make_clips(folder: Path, count: int, frames: int, size: tuple[int, int]) -> list[str]:
    """``count`` clips of ``frames`` frames cut (and tiled in time) from the shipped sample."""
    width, height = size
    source = np.stack(list(read_frames(ROOT / "samples" / "bbb_160x90.mp4")))
    paths = []
    for index in range(count):
        path = folder / f"clip{index}_{frames}.mkv"
        with VideoWriter(path, width, height, Fraction(25), codec="ffv1") as writer:
            for t in range(frames):
                writer.write(np.ascontiguousarray(source[(t + index) % len(source), :height, :width]))
        paths.append(str(path))
    return paths


class PeakMemory:
    """Peak summed RSS of this process and its descendants (Ray's workers included)."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="48x32", help="LR WxH")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--pipeline-config", default=str(ROOT / "configs" / "pipeline" / "cpu.yaml"))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    spec, settings = ModelSpec(preset="tiny", steps=args.steps), VideoSettings(codec="ffv1")
    config = load_pipeline_config(args.pipeline_config)
    work = Path(tempfile.mkdtemp(prefix="satecco-bench-"))
    try:
        clips = make_clips(work, args.videos, args.frames, size)
        total = args.videos * args.frames
        started = time.perf_counter()
        run_local(clips, work / "local", build_pipeline(spec), settings, progress=False)
        local_s = time.perf_counter() - started
        init_ray(None)
        run_ray(clips[:1], work / "warm", spec, settings, config, progress=False)  # Ray start-up, not timed
        started = time.perf_counter()
        run_ray(clips, work / "ray", spec, settings, config, progress=False)
        ray_s = time.perf_counter() - started
        print(f"{args.videos} videos x {args.frames} frames of {args.size} (tiny, {args.steps} steps, "
              f"{os.cpu_count()} cores)")
        print(f"local engine: {total / local_s:.3f} frames/s ({local_s:.1f} s)")
        print(f"ray engine:   {total / ray_s:.3f} frames/s ({ray_s:.1f} s, actor start-up included)")
        print(f"ray / local:  {local_s / ray_s:.2f}")
        peaks = {}
        for repeat in (1, 10):
            long_clip = make_clips(work, 1, args.frames * repeat, size)
            with PeakMemory() as memory:
                run_ray(long_clip, work / f"mem{repeat}", spec, settings, config, progress=False)
            peaks[repeat] = memory.peak
            print(f"peak RSS, driver + workers, {args.frames * repeat} frames: {memory.peak / 2**20:.0f} MiB")
        print(f"10x longer / short: {peaks[10] / peaks[1]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
