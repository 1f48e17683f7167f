"""The Ray engine against the in-process engine, as a user runs them, and memory against video length.

    python benchmarks/bench_engines.py                 # tiny preset, CPU, clips cut from the sample
    python benchmarks/bench_engines.py --videos 4 --frames 24 --size 160x90 --steps 4

Each measurement is one fresh ``satecco upscale`` process, exactly as a user starts it: ``--engine
local``, and ``--engine ray`` with ``configs/pipeline/cpu.yaml`` (which starts a local Ray instance,
its stage actors, and stops them at the end). Both pay their imports and model build; the Ray engine
also pays Ray's start-up. Printed: wall seconds and frames per second of each engine on one video and
on several, their ratios, then the peak resident memory of the whole process tree (driver, Ray's
daemons and workers; sampled every 0.2 s with psutil) through the Ray engine for a short input and one
10x longer. The memory runs use one stage actor (the pipeline config with its pool cut to one), so
that they show how memory grows with length and not with the number of actors (a pool never starts
more actors than the input has segments, and the short input has one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import psutil
import yaml

from satecco.video.read import read_frames
from satecco.video.write import VideoWriter

ROOT = Path(__file__).parent.parent
SATECCO = str(Path(sys.executable).parent / "satecco")


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


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of ``process`` and all its descendants (Ray's daemons and workers included)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_cli(args: list[str]) -> tuple[float, int]:
    """Run ``satecco upscale ARGS`` in a fresh process; returns (wall seconds, peak tree RSS in bytes)."""
    started = time.perf_counter()
    process = subprocess.Popen([SATECCO, "upscale", *args, "--no-progress"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    watched, peak, done = psutil.Process(process.pid), 0, threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(watched))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"satecco upscale {' '.join(args)} failed:\n{stderr[-3000:]}")
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=3, help="videos in the several-videos run")
    parser.add_argument("--frames", type=int, default=24, help="frames per video")
    parser.add_argument("--size", default="160x90", help="LR WxH")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--memory-frames", type=int, default=12, help="short input of the memory run")
    parser.add_argument("--memory-size", default="48x32", help="LR WxH of the memory run")
    parser.add_argument("--pipeline-config", default=str(ROOT / "configs" / "pipeline" / "cpu.yaml"))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    common = ["--preset", "tiny", "--steps", str(args.steps), "--codec", "ffv1"]
    engines = {"local": ["--engine", "local"],
               "ray": ["--engine", "ray", "--pipeline-config", args.pipeline_config]}
    work = Path(tempfile.mkdtemp(prefix="satecco-bench-"))
    try:
        clips = make_clips(work, args.videos, args.frames, size)
        print(f"tiny preset, {args.steps} steps, {os.cpu_count()} cores, clips of {args.frames} frames of "
              f"{args.size}; one fresh `satecco upscale` process per figure")
        for label, inputs in (("1 video", clips[:1]), (f"{args.videos} videos", clips)):
            frames, seconds = len(inputs) * args.frames, {}
            for engine, flags in engines.items():
                out = work / f"{engine}-{len(inputs)}"
                seconds[engine], _ = run_cli([*inputs, "-o", str(out), *common, *flags])
                print(f"{label}, {engine:5s} engine: {seconds[engine]:6.1f} s, "
                      f"{frames / seconds[engine]:.3f} frames/s")
            print(f"{label}, ray / local: {seconds['local'] / seconds['ray']:.2f}")
        memory_size = tuple(int(v) for v in args.memory_size.split("x"))
        one_actor = work / "one-actor.yaml"
        pipeline = yaml.safe_load(Path(args.pipeline_config).read_text())
        for group in pipeline["groups"]:
            group["min_actors"] = group["max_actors"] = 1
        one_actor.write_text(yaml.safe_dump(pipeline))
        peaks = {}
        for repeat in (1, 10):
            clip = make_clips(work, 1, args.memory_frames * repeat, memory_size)
            _, peaks[repeat] = run_cli([*clip, "-o", str(work / f"mem{repeat}"), *common, "--engine", "ray",
                                        "--pipeline-config", str(one_actor)])
            print(f"peak RSS, whole process tree, {args.memory_frames * repeat} frames of {args.memory_size}: "
                  f"{peaks[repeat] / 2**20:.0f} MiB")
        print(f"10x longer / short: {peaks[10] / peaks[1]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
