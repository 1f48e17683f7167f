"""Segments and split parts reproduce the in-process engine exactly."""

from __future__ import annotations

import numpy as np
import pytest

from satecco.pipeline import SATeCoPipeline
from satecco.presets import TINY
from satecco.segments import blend_seam, plan_segments, run_segment
from satecco.video.read import read_frames
from satecco.windows import TemporalBlender, iter_windows, plan_windows, quantize


@pytest.mark.parametrize("frames", [1, 4, 6, 7, 15, 19, 26, 40])
def test_plans_match_the_streaming_windows(frames):
    stream = [start for start, _ in iter_windows([np.zeros((1, 1, 3))] * frames, 6, 2)]
    assert plan_windows(frames, 6, 2) == stream
    length = min(6, frames)
    for per in (1, 2, 3):
        segments = plan_segments(frames, 6, 2, per)
        assert [w for s in segments for w in s.windows] == stream  # every window computed once, in order
        order = []
        for s, following in zip(segments, [*segments[1:], None], strict=True):
            order += range(s.emit_start, s.emit_stop)
            # own frames: covered by this segment's windows and no other's
            for i in range(s.emit_start, s.emit_stop):
                assert {w for w in stream if w <= i < w + length} <= set(s.windows)
            if following is not None:
                assert following.read_start == s.emit_stop and following.emit_start == s.read_stop
                order += range(s.emit_stop, s.read_stop)  # shared with the next segment only
        assert order == list(range(frames))  # own and shared frames tile the video, in order


def test_segments_and_split_parts_equal_the_whole_video(tiny_parts):
    model, _ = tiny_parts
    pipeline = SATeCoPipeline(model, TINY.with_diffusion(steps=1).diffusion)
    video = np.stack(list(read_frames("samples/bbb_160x90.mp4")))[:19, :12, :20]
    blender, whole = TemporalBlender(2), []
    for start, window in iter_windows(video, 6, 2):
        whole += [quantize(f) for _, f in blender.add(start, pipeline.upscale_window(window, start, seed=3))]
    whole += [quantize(f) for _, f in blender.finish()]

    pieces, tail = [], None
    for segment in plan_segments(len(video), 6, 2, windows_per_segment=1):
        windows = np.stack([video[s:s + segment.length] for s in segment.windows])
        starts = np.array(segment.windows)
        emit = (segment.emit_start, segment.emit_stop)
        latents = run_segment(pipeline, windows, starts, emit, 3, 2, parts=("encode",))
        denoised = run_segment(pipeline, windows, starts, emit, 3, 2, parts=("denoise",), carried=latents)
        split = run_segment(pipeline, windows, starts, emit, 3, 2, parts=("decode",), carried=denoised)
        fused = run_segment(pipeline, windows, starts, emit, 3, 2)
        for key in split:
            np.testing.assert_array_equal(fused[key], split[key])
        if tail is not None:  # the frames shared with the segment before: its share and ours
            pieces.append(quantize(blend_seam(tail, (split["head"], split["head_weights"]))))
        else:
            assert len(split["head"]) == 0
        pieces.append(split["frames"])
        tail = split["tail"], split["tail_weights"]
    assert len(tail[0]) == 0
    np.testing.assert_array_equal(np.concatenate(pieces), np.stack(whole))
