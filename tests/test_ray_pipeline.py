"""The Ray engine on the shared local Ray instance: equality with the local engine,
bad inputs, resume after a killed driver, and a killed stage actor."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ray_workers
from media import NTSC, archive_mkv, audio_packets, plain_pyav_mp4

from satecco.build import build_pipeline
from satecco.engine_local import upscale_locally
from satecco.inputs import REPORT, VideoSettings
from satecco.pipelines.config import (
    GroupConfig,
    PipelineConfig,
    load_pipeline_config,
)
from satecco.pipelines.upscale import upscale_on_ray
from satecco.presets import ModelSpec
from satecco.run_report import HTML_REPORT
from satecco.video.read import probe, read_frames

SPEC = ModelSpec(preset="tiny", steps=1)
SETTINGS = VideoSettings(codec="ffv1", seed=11)
SPLIT = PipelineConfig(groups=(
    GroupConfig(("upscale", "encode"), num_cpus=0.5),
    GroupConfig(("denoise",), num_cpus=0.5),
    GroupConfig(("decode", "refine"), num_cpus=0.5),
), windows_per_segment=1, decode_cpus=0.25, write_cpus=0.25)
FUSED = PipelineConfig(windows_per_segment=1, decode_cpus=0.25, write_cpus=0.25)
pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return [str(plain_pyav_mp4(folder / "a.mp4", n=14, height=16, width=24, audio=True)),
            str(plain_pyav_mp4(folder / "b.mp4", n=5, height=16, width=16))]


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory):
    """The in-process engine's output for each clip."""
    out = tmp_path_factory.mktemp("local")
    results = upscale_locally(clips, out, build_pipeline(SPEC), SETTINGS, progress=False)
    assert [r.status for r in results] == ["ok", "ok"]
    return {r.input: np.stack(list(read_frames(r.output))) for r in results}


def assert_same_video(path, expected: np.ndarray) -> None:
    """Same frames as the local engine, up to 1/255: workers run with their own thread counts, so float
    reductions may round a rare pixel the other way."""
    frames = np.stack(list(read_frames(path)))
    assert frames.shape == expected.shape
    difference = np.abs(frames.astype(int) - expected)
    assert difference.max() <= 1 and difference.mean() < 1e-3


def test_ray_engine_equals_local_engine_and_bad_inputs_fail_alone(clips, reference, tmp_path):
    """Besides equality: a bad file fails alone, and inputs whose output would be an input (here one that
    lies in OUTDIR) or is claimed by an earlier input (another `a`) are refused before any work."""
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    (tmp_path / "out").mkdir()
    inside = tmp_path / "out" / "c.mkv"
    inside.write_bytes(b"an input that lies where its output would go")
    other_a = tmp_path / "elsewhere" / "a.mp4"
    other_a.parent.mkdir()
    other_a.write_bytes(Path(clips[1]).read_bytes())
    inputs = [clips[0], str(bad), clips[1], str(inside), str(other_a)]
    results = upscale_on_ray(inputs, tmp_path / "out", SPEC, SETTINGS, FUSED, progress=False)
    assert [r.status for r in results] == ["ok", "failed", "ok", "failed", "failed"]
    assert str(bad) in results[1].error and "not a video" in results[1].error
    assert results[3].error == f"{inside}: refused: its output {inside} would overwrite the input {inside}; " \
                               "choose another -o or a --suffix"
    assert results[4].error.startswith(f"{other_a}: refused: its output {tmp_path / 'out' / 'a.mkv'} is already "
                                       f"the output of {clips[0]}")
    assert inside.read_bytes() == b"an input that lies where its output would go"
    results = results[:3]
    for result in (results[0], results[2]):
        assert_same_video(result.output, reference[result.input])
        assert probe(result.output).frame_rate == NTSC
    assert audio_packets(results[0].output) == audio_packets(clips[0])
    report = [json.loads(line) for line in (tmp_path / "out" / REPORT).read_text().splitlines()]
    assert [(r["input"], r["status"], r["frames"]) for r in report] == [
        (clips[0], "ok", 14), (str(bad), "failed", 0), (clips[1], "ok", 5), (str(inside), "failed", 0),
        (str(other_a), "failed", 0)]
    # parts are removed once joined, and so is their folder once empty
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mkv", "b.mkv", "c.mkv", HTML_REPORT, REPORT]

    again = upscale_on_ray(clips, tmp_path / "out", SPEC, SETTINGS, FUSED, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]


def test_a_killed_stage_actor_is_restarted_and_the_output_is_unchanged(clips, reference, tmp_path):
    """SIGKILL the stage actor's process (Ray titles it ``ray::MapWorker(MapBatches(StageActor))``)
    once the first segment is written; Ray Data restarts it and retries its segment."""
    killed = []

    def kill_stage_actor():
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            if list((tmp_path / "out").glob(".satecco-parts/a.mkv-*/*/part-*")):  # mid-run: some segments are written
                for process in ray_workers("StageActor")[:1]:
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(process.pid)
            time.sleep(0.05)

    thread = threading.Thread(target=kill_stage_actor)
    thread.start()
    results = upscale_on_ray([clips[0]], tmp_path / "out", SPEC, SETTINGS, FUSED, progress=False)
    thread.join()
    assert killed, "no stage actor was killed mid-run"
    assert results[0].status == "ok"
    assert_same_video(results[0].output, reference[clips[0]])


def test_stage_actors_that_cannot_build_the_model_fail_every_input_with_one_line(clips, tmp_path):
    """Weights that do not fit the model: the stage actor reports that reason for every input instead
    of crashing. A stage actor that crashes on start (a CUDA device on a machine without one) stops the
    pipeline: every input fails with the root cause. Either way: no traceback out of ``run_ray``, the
    report is written, and nothing sits at an output path."""
    import torch
    from safetensors.torch import save_file

    from satecco.checkpoints import FORMAT

    misfit = tmp_path / "misfit.safetensors"
    save_file({"refiner.bogus": torch.zeros(3)}, str(misfit),
              metadata={"format": FORMAT, "configs": json.dumps({"refiner": {}})})
    cases = {"weights": (ModelSpec(preset="tiny", steps=1, weights=str(misfit)),
                         f"stage cannot build its model: {misfit}: module 'refiner' does not fit this model: ")}
    if not torch.cuda.is_available():  # on a GPU machine --device cuda is no failure
        cases["device"] = (ModelSpec(preset="tiny", steps=1, device="cuda"),
                           "the Ray pipeline stopped: ActorDiedError: RuntimeError: ")
    for name, (spec, reason) in cases.items():
        out = tmp_path / name
        results = upscale_on_ray(clips, out, spec, SETTINGS, FUSED, progress=False)
        assert [r.status for r in results] == ["failed", "failed"], name
        for result, clip in zip(results, clips, strict=True):
            assert result.error.startswith(f"{clip}: ") and reason in result.error, result.error
            assert "\n" not in result.error
        report = [json.loads(line) for line in (out / REPORT).read_text().splitlines()]
        assert [(r["input"], r["status"]) for r in report] == [(c, "failed") for c in clips]
        assert sorted(p.name for p in out.iterdir()) == [HTML_REPORT, REPORT]


def test_killed_driver_resumes_without_redoing_finished_parts(clips, reference, tmp_path):
    """Kill the whole `satecco upscale` process group mid-run, rerun, compare with an uninterrupted run."""
    config = tmp_path / "pipeline.yaml"
    config.write_text("groups:\n  - stages: [upscale, encode, denoise, decode, refine]\n    num_cpus: 1\n"
                      "windows_per_segment: 1\ndecode_cpus: 0.25\nwrite_cpus: 0.25\n")
    assert load_pipeline_config(config).windows_per_segment == 1
    out = tmp_path / "out"
    import ray

    # joins the test's Ray instance: a killed driver's actors die with its job, the instance lives on
    command = [sys.executable, "-m", "satecco.cli", "upscale", clips[0], "-o", str(out), "--codec", "ffv1",
               "--steps", "1", "--seed", "11", "--pipeline-config", str(config), "--no-progress",
               "--address", ray.get_runtime_context().gcs_address]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob(".satecco-parts/a.mkv-*/*/part-*.mkv")):
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in out.glob(".satecco-parts/a.mkv-*/*/part-*.mkv"))
    assert 1 <= len(finished) < 3, finished  # a has 3 segments of one window each
    assert not (out / "a.mkv").exists()

    results = upscale_on_ray([clips[0]], out, SPEC, SETTINGS, load_pipeline_config(config), progress=False)
    assert results[0].status == "ok" and results[0].reused_parts == len(finished)
    assert_same_video(out / "a.mkv", reference[clips[0]])
    # Parts made with other settings are discarded, not reused: tests/test_inputs.py plans such a rerun.


def test_ray_engine_honours_the_method_and_the_ablation_switches(clips, tmp_path, capfd, caplog):
    """A method and ablation switches together through three actor pools, on an excerpt (--frames),
    give the local engine's output for the same options: an actor that dropped either would give another
    output (that each changes the output is tests/test_baselines.py's business; bicubic through Ray: the
    archive test below). The console of the run: one bar (frames, videos, ETA), one summary, no Ray log."""
    spec = ModelSpec(preset="tiny", steps=1, method="framewise", no_sfa=("unet",), refiner_w=0.25)
    settings = VideoSettings(codec="ffv1", seed=11, window_overlap=0, frames=(3, 12))  # an excerpt, too
    local = upscale_locally([clips[0]], tmp_path / "local", build_pipeline(spec), settings, progress=False)
    capfd.readouterr()
    caplog.set_level(logging.WARNING)  # as `satecco upscale` without -v (pytest's own level is lower)
    results = upscale_on_ray([clips[0]], tmp_path / "ray", spec, settings, SPLIT, progress=True)
    assert results[0].status == "ok" and results[0].frames == 9
    err = capfd.readouterr().err
    lines = [line for line in re.split(r"[\r\n]+", err) if line.strip()]
    bar, others = [line for line in lines if "%|" in line], [line for line in lines if "%|" not in line]
    assert re.search(r"100%\|.*\| 9/9 \[\d\d:\d\d<00:00, .*videos=1/1\]", bar[-1]), bar[-3:]
    assert len(others) == 2 and "a.mp4: frames 3 to 11 of 14" in others[0], others  # the input's note
    assert others[1].startswith("satecco: 9 frames in ") and "busy time per stage" in others[1]
    assert not re.search(r"Starting execution|logging_progress| E \d+ \d+\]", err), err[-2000:]
    expected = np.stack(list(read_frames(local[0].output)))
    assert_same_video(results[0].output, expected)


def test_ray_engine_keeps_what_the_local_engine_keeps(tmp_path):
    """Variable timing, rotation, every stream, a 10-bit HDR source and an interlaced one, cut into
    several segments, scaled to x1.5 (--outscale) and joined: the Ray engine's outputs equal the local
    engine's, streams and timestamps included."""
    clips = [str(archive_mkv(tmp_path / "reel.mkv", n=14, rotation=90,
                             times_ms=[0, 40, 80, 200, 240, 250, 260, 400, 440, 480, 600, 640, 680, 720])),
             str(archive_mkv(tmp_path / "hdr.mkv", n=8, pix_fmt="yuv420p10le", colour=(9, 16, 9, 1))),
             str(archive_mkv(tmp_path / "tv.mkv", n=9, interlaced=True))]
    spec = ModelSpec(preset="tiny", method="bicubic")
    settings = VideoSettings(codec="ffv1", window=3, window_overlap=0, outscale=1.5)
    local = upscale_locally(clips, tmp_path / "local", build_pipeline(spec), settings, progress=False)
    ray = upscale_on_ray(clips, tmp_path / "ray", spec, settings, FUSED, progress=False)
    assert next(read_frames(local[0].output)).shape == (48, 72, 3)
    assert [r.status for r in ray] == [r.status for r in local] == ["ok"] * 3
    assert [r.notes for r in ray] == [r.notes for r in local]
    for a, b in zip(local, ray, strict=True):
        np.testing.assert_array_equal(np.stack(list(read_frames(a.output, bits=16))),
                                      np.stack(list(read_frames(b.output, bits=16))))
        with av.open(a.output) as one, av.open(b.output) as other:
            assert [(s.type, s.codec_context.name, dict(s.metadata)) for s in one.streams] == \
                [(s.type, s.codec_context.name, dict(s.metadata)) for s in other.streams]
            assert one.chapters() == other.chapters()
            assert [f.time for f in one.decode(video=0)] == [f.time for f in other.decode(video=0)]
