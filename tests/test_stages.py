"""The Ray Data stages as plain functions on plain rows, without Ray."""

from __future__ import annotations

import os

import numpy as np
import torch
from media import plain_pyav_mp4

from satecco.inputs import VideoSettings
from satecco.pipelines.config import PipelineConfig
from satecco.pipelines.stages import StageActor, decode_segment, seam_path, write_segment
from satecco.pipelines.upscale import plan_videos
from satecco.presets import ModelSpec
from satecco.video.read import read_frames


def test_stages_on_plain_rows(tmp_path):
    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=10, height=16, width=16)
    bad = tmp_path / "gone.mp4"
    settings = VideoSettings(codec="ffv1", seed=1)
    results, plans, rows = plan_videos([str(clip), str(bad)], tmp_path / "out", settings,
                                       PipelineConfig(windows_per_segment=1), fingerprint="f")
    assert [r.status for r in results] == ["failed"] and "no such file" in results[0].error
    assert [r["segment"] for r in rows] == [0, 1] and plans[str(clip)].pending == 2

    stage = StageActor(ModelSpec(steps=1), parts=("encode", "denoise", "decode"), name="all", seed=1, overlap=2)
    for row in rows:
        decoded = decode_segment(row)
        assert decoded["lr"].shape == (len(row["windows"]), 6, 16, 16, 3)
        batch = {key: np.array([value]) if not isinstance(value, np.ndarray) else value[None]
                 for key, value in decoded.items()}
        out = {key: value[0] for key, value in stage(batch).items()}
        assert "lr" not in out and out["frames"].dtype == np.uint8
        assert out["frames"].shape == (row["emit_stop"] - row["emit_start"], 64, 64, 3)
        shares = {side: len(out[side]) for side in ("head", "tail")}
        assert sum(shares.values()) == 2 and out["head"].shape[1:] == (64, 64, 3)  # 2 frames overlap
        written = write_segment(out)
        assert not written["error"] and "frames" not in written and "tail" not in written
        assert sum(1 for _ in read_frames(written["part"])) == written["frames_written"]
        for side in ("head", "tail"):  # each share of the shared frames lies beside the part
            assert os.path.exists(seam_path(row["part"], side)) == bool(shares[side])

    broken = {**rows[0], "video": str(bad)}
    failed = decode_segment(broken)
    assert str(bad) in failed["error"] and "lr" not in failed
    batch = {key: np.array([value]) for key, value in failed.items()}
    assert stage(batch)["error"][0] == failed["error"]  # error rows pass through untouched


def test_stage_actor_sets_torch_threads():
    """``threads`` in a pipeline group: an int, or ``all`` for every core this process may use."""
    before = torch.get_num_threads()
    try:
        StageActor(ModelSpec(steps=1), parts=("encode",), name="encode", seed=1, overlap=2, threads=1)
        assert torch.get_num_threads() == 1
        StageActor(ModelSpec(steps=1), parts=("encode",), name="encode", seed=1, overlap=2, threads="all")
        assert torch.get_num_threads() == len(os.sched_getaffinity(0))
    finally:
        torch.set_num_threads(before)
