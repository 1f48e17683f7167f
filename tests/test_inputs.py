"""Inputs are never touched and outputs never collide: how inputs are named, where their outputs go,
what is refused before any work, and `--suffix`, `--overwrite`, `--recursive` (local engine; the Ray
engine shares `assign_outputs`, and tests/test_ray_pipeline.py checks its refusals)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from media import plain_pyav_mp4

from satecco.cli import main
from satecco.inputs import Input, VideoSettings, assign_outputs, expand_inputs
from satecco.pipelines.config import PipelineConfig
from satecco.pipelines.plan import plan_videos
from satecco.video.codecs import EncoderSettings
from satecco.video.read import probe, read_frames

FFV1 = VideoSettings(codec="ffv1")


def test_folders_mirror_their_videos_and_recursive_walks_subfolders(tmp_path):
    for relative in ("x.mp4", "z.mxf", "a/x.mp4", "a/b/y.mkv", "a/notes.txt"):
        (tmp_path / "root" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / relative).write_bytes(b"")
    (tmp_path / "frames").mkdir()
    root = str(tmp_path / "root")
    assert [(i.source, i.name) for i in expand_inputs([root])] == [(f"{root}/x.mp4", "x"), (f"{root}/z.mxf", "z")]
    assert [(i.source, i.name) for i in expand_inputs([root], recursive=True)] == [
        (f"{root}/a/b/y.mkv", "a/b/y"), (f"{root}/a/x.mp4", "a/x"), (f"{root}/x.mp4", "x"), (f"{root}/z.mxf", "z")]
    assert [i.name for i in expand_inputs([str(tmp_path / "frames"), f"{root}/a/x.mp4"])] == ["frames", "x"]
    targets, refused = assign_outputs(expand_inputs([root], recursive=True), tmp_path / "out",
                                      VideoSettings(codec="ffv1", suffix="_x4"))
    assert not refused and list(targets.values()) == [
        str(tmp_path / "out" / "a/b/y_x4.mkv"), str(tmp_path / "out" / "a/x_x4.mkv"), str(tmp_path / "out/x_x4.mkv"),
        str(tmp_path / "out/z_x4.mkv")]


def test_outputs_that_are_inputs_or_claimed_twice_are_refused_naming_both(tmp_path):
    a, b, inside = str(tmp_path / "a" / "x.mkv"), str(tmp_path / "b" / "x.mkv"), str(tmp_path / "out" / "y.mkv")
    targets, refused = assign_outputs([a, b, inside, Input.of(a)], tmp_path / "out", FFV1)
    assert targets == {a: str(tmp_path / "out" / "x.mkv")}  # a named twice is one input
    assert [r.error for r in refused] == [
        f"{b}: refused: its output {tmp_path / 'out' / 'x.mkv'} is already the output of {a}; give them "
        "different names or folders",
        f"{inside}: refused: its output {inside} would overwrite the input {inside}; choose another -o or a --suffix"]
    # Another spelling of the same path is the same path; a suffix tells output and input apart.
    targets, refused = assign_outputs([str(tmp_path / "out" / ".." / "out" / "y.mkv")], tmp_path / "out", FFV1)
    assert not targets and len(refused) == 1
    targets, refused = assign_outputs([inside], tmp_path / "out", VideoSettings(codec="ffv1", suffix="_x4"))
    assert targets == {inside: str(tmp_path / "out" / "y_x4.mkv")} and not refused


def test_outdir_equal_to_the_input_folder_never_touches_the_input(tmp_path, capsys):
    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=6, height=16, width=16)
    original = clip.read_bytes()
    common = ["upscale", "--engine", "local", str(clip), "-o", str(tmp_path), "--steps", "1", "--no-progress"]
    assert main(common) == 1
    assert clip.read_bytes() == original
    assert f"satecco: error: {clip}: refused: its output {clip} would overwrite the input" in capsys.readouterr().err
    assert main([*common, "--suffix", "_x4"]) == 0
    assert clip.read_bytes() == original and probe(tmp_path / "clip_x4.mp4").width == 64


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, capsys):
    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=6, height=16, width=16)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.mkv").write_bytes(b"an earlier output")
    common = ["upscale", "--engine", "local", str(clip), "-o", str(out), "--codec", "ffv1", "--steps", "1",
              "--no-progress"]
    assert main(common) == 0 and (out / "clip.mkv").read_bytes() == b"an earlier output"
    assert "(already there, skipped; --overwrite replaces it)" in capsys.readouterr().out
    assert main([*common, "--overwrite"]) == 0
    assert next(read_frames(out / "clip.mkv")).shape == (64, 64, 3)
    (out / "frames").mkdir()
    (out / "frames" / "old.png").write_bytes(b"")
    assert main([*common, "--codec", "png", "--overwrite"]) == 0  # a frame folder is replaced whole
    assert sorted(p.name for p in (out / "clip").iterdir())[0] == "000000.png"


def test_same_stems_in_two_folders_one_refused_or_mirrored_with_recursive(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / "root" / folder).mkdir(parents=True)
    a = plain_pyav_mp4(tmp_path / "root" / "a" / "x.mp4", n=6, height=16, width=16)
    b = plain_pyav_mp4(tmp_path / "root" / "b" / "x.mp4", n=6, height=16, width=24)
    common = ["--engine", "local", "--codec", "ffv1", "--steps", "1", "--no-progress"]
    assert main(["upscale", str(a), str(b), "-o", str(tmp_path / "flat"), *common]) == 1
    assert f"{b}: refused: its output {tmp_path / 'flat' / 'x.mkv'} is already the output of {a}" in \
        capsys.readouterr().err
    assert next(read_frames(tmp_path / "flat" / "x.mkv")).shape == (64, 64, 3)  # a's frames, not b's
    assert main(["upscale", str(tmp_path / "root"), "--recursive", "-o", str(tmp_path / "tree"), *common]) == 0
    shapes = {name: next(read_frames(tmp_path / "tree" / name / "x.mkv")).shape for name in ("a", "b")}
    assert shapes == {"a": (64, 64, 3), "b": (64, 96, 3)}


def test_ray_plan_keys_parts_by_input_and_replans_existing_outputs_with_overwrite(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    a = plain_pyav_mp4(tmp_path / "a" / "x.mp4", n=6, height=16, width=16)
    b = plain_pyav_mp4(tmp_path / "b" / "x.mp4", n=6, height=16, width=16)
    inputs = [Input(str(a), "a/x"), Input(str(b), "b/x")]
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "x.mkv").write_bytes(b"done before")
    results, plans, rows = plan_videos(inputs, str(out), FFV1, PipelineConfig(), fingerprint="f")
    assert [r.status for r in results] == ["skipped"] and list(plans) == [str(b)]
    results, plans, rows = plan_videos(inputs, str(out), VideoSettings(codec="ffv1", overwrite=True),
                                       PipelineConfig(), fingerprint="f")
    assert not results and list(plans) == [str(a), str(b)]
    folders = {row["part"].rsplit("/", 3)[-3] for row in rows}
    assert len(folders) == 2 and all(folder.startswith("x.mkv-") for folder in folders)
    assert np.all([plans[str(a)].join.overwrite, plans[str(b)].join.overwrite])


def test_the_fingerprint_holds_what_changes_pixels_and_nothing_else(tmp_path):
    import shutil
    from dataclasses import replace

    from satecco.fingerprint import fingerprint
    from satecco.presets import EMBEDDED_TINY, ModelSpec

    spec, settings = ModelSpec(steps=2), VideoSettings(codec="ffv1", seed=1)
    base = fingerprint(spec, settings)
    assert fingerprint(ModelSpec(steps=2), VideoSettings(codec="ffv1", seed=1)) == base
    assert fingerprint(spec, replace(settings, suffix="_x4", overwrite=True)) == base  # where, not what
    changed = [replace(spec, steps=3), replace(spec, sampler="euler"), replace(spec, start_step=500),
               replace(spec, tile=32), replace(spec, dtype="bfloat16"), replace(spec, method="framewise")]
    assert len({base, *(fingerprint(s, settings) for s in changed)}) == 1 + len(changed)
    others = [replace(settings, seed=2), replace(settings, window=5), replace(settings, window_overlap=1),
              replace(settings, codec="h264"), replace(settings, codec="h264", encoder=EncoderSettings(crf=20))]
    assert len({base, *(fingerprint(spec, s) for s in others)}) == 1 + len(others)
    weights = tmp_path / "w.safetensors"
    shutil.copyfile(EMBEDDED_TINY / "satecco.safetensors", weights)
    same_bytes = fingerprint(replace(spec, weights=str(weights)), settings)
    assert same_bytes == base  # the embedded default's weights, by content, wherever they lie
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert fingerprint(replace(spec, weights=str(weights)), settings) != base


def test_parts_made_with_other_settings_are_discarded_not_reused(tmp_path):
    from satecco.segments import parts_folder

    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=14, height=16, width=16)  # 3 windows, 3 segments
    out = str(tmp_path / "out")
    target = f"{out}/clip.mkv"
    old = Path(parts_folder(out, str(clip), target, "old-settings"))
    old.mkdir(parents=True)
    for name in ("part-000000.mkv", "part-000000.tail.npz", "part-000001.mkv"):
        (old / name).write_bytes(b"made with the old settings")
    config = PipelineConfig(windows_per_segment=1)
    results, plans, rows = plan_videos([str(clip)], out, FFV1, config, fingerprint="old-settings")
    assert plans[str(clip)].reused == 2 and plans[str(clip)].discarded == 0 and len(rows) == 1
    results, plans, rows = plan_videos([str(clip)], out, FFV1, config, fingerprint="new-settings")
    plan = plans[str(clip)]
    assert (plan.reused, plan.discarded, len(rows)) == (0, 2, 3) and not old.exists()
    assert all("/new-settings/part-" in row["part"] for row in rows)
    assert plan.result(None).discarded_parts == 2


def test_the_run_report_gets_each_line_as_its_input_ends(tmp_path):
    """Local engine: when the second input starts, the first one's line is already in the report; at the
    end the report holds every input (the refused one too) in the inputs' order."""
    import json

    from satecco.baselines import BicubicUpscaler
    from satecco.engine_local import upscale_locally
    from satecco.inputs import REPORT

    class Watching(BicubicUpscaler):
        def run_windows(self, windows, starts, seed, *args):
            report = tmp_path / "out" / REPORT
            seen.append(len(report.read_text().splitlines()))
            return super().run_windows(windows, starts, seed, *args)

    seen: list[int] = []
    a = plain_pyav_mp4(tmp_path / "a.mp4", n=4, height=16, width=16)
    b = plain_pyav_mp4(tmp_path / "b.mp4", n=4, height=16, width=16)
    (tmp_path / "out").mkdir()
    inside = tmp_path / "out" / "c.mkv"
    inside.write_bytes(b"")
    results = upscale_locally([str(a), str(inside), str(b)], tmp_path / "out", Watching(), FFV1, progress=False)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert seen == [1, 2]  # a's window saw the refused line; b's saw a's line too
    lines = [json.loads(line) for line in (tmp_path / "out" / REPORT).read_text().splitlines()]
    assert [(r["input"], r["status"]) for r in lines] == [(str(a), "ok"), (str(inside), "failed"), (str(b), "ok")]


def test_a_glob_that_matches_nothing_is_reported_not_dropped(tmp_path, capsys):
    pattern = str(tmp_path / "clips" / "*.mp4")
    assert [i.source for i in expand_inputs([pattern])] == [pattern]
    assert main(["upscale", "--engine", "local", pattern, "-o", str(tmp_path / "out"), "--no-progress"]) == 1
    assert f"satecco: error: {pattern}: no such file" in capsys.readouterr().err
