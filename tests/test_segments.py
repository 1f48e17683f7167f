"""Segments and split parts reproduce the in-process engine exactly."""

from __future__ import annotations

import numpy as np
import pytest

from satecco.layout import quantize
from satecco.pipeline import SATeCoPipeline
from satecco.presets import TINY
from satecco.segments import run_segment
from satecco.video_io import read_frames
from satecco.windows import TemporalBlender, iter_windows, plan_segments, plan_windows


@pytest.mark.parametrize("frames", [1, 4, 6, 7, 15, 26, 40])
def test_plans_match_the_streaming_windows(frames):
    stream = [start for start, _ in iter_windows([np.zeros((1, 1, 3))] * frames, 6, 2)]
    assert plan_windows(frames, 6, 2) == stream
    for per in (1, 2, 3):
        segments = plan_segments(frames, 6, 2, per)
        owned = [i for s in segments for i in range(s.emit_start, s.emit_stop)]
        assert owned == list(range(frames))  # every frame owned exactly once, in order
        for s in segments:
            covering = {w for w in stream if w < s.emit_stop and w + min(6, frames) > s.emit_start}
            assert set(s.windows) == covering  # all windows a kept frame blends, no others


def test_segments_and_split_parts_equal_the_whole_video(tiny_parts):
    model, _ = tiny_parts
    pipeline = SATeCoPipeline(model, TINY.with_diffusion(steps=1).diffusion)
    video = np.stack(list(read_frames("samples/bbb_160x90.mp4")))[:15, :12, :20]
    blender, whole = TemporalBlender(2), []
    for start, window in iter_windows(video, 6, 2):
        whole += [quantize(f) for _, f in blender.add(start, pipeline.upscale_window(window, start, seed=3))]
    whole += [quantize(f) for _, f in blender.finish()]

    pieces = []
    for segment in plan_segments(len(video), 6, 2, windows_per_segment=1):
        windows = np.stack([video[s:s + segment.length] for s in segment.windows])
        starts = np.array(segment.windows)
        emit = (segment.emit_start, segment.emit_stop)
        latents = run_segment(pipeline, windows, starts, emit, 3, 2, parts=("encode",))
        denoised = run_segment(pipeline, windows, starts, emit, 3, 2, parts=("denoise",), carried=latents)
        pieces.append(run_segment(pipeline, windows, starts, emit, 3, 2, parts=("decode",),
                                  carried=denoised)["frames"])
        fused = run_segment(pipeline, windows, starts, emit, 3, 2)["frames"]
        np.testing.assert_array_equal(fused, pieces[-1])
    np.testing.assert_array_equal(np.concatenate(pieces), np.stack(whole))
