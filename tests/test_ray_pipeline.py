"""The Ray engine on one local Ray instance (shared by this module): equality with the local engine,
bad inputs, resume after a killed driver, and a killed stage actor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from media import NTSC, audio_packets, plain_pyav_mp4

from pipelines.config import (
    STAGES,
    GroupConfig,
    PipelineConfig,
    default_pipeline_config,
    load_pipeline_config,
)
from pipelines.upscale import REPORT, init_ray, run_ray
from satecco.build import build_pipeline
from satecco.presets import ModelSpec
from satecco.upscale import VideoSettings, run_local
from satecco.video_io import probe, read_frames

SPEC = ModelSpec(preset="tiny", steps=1)
SETTINGS = VideoSettings(codec="ffv1", seed=11)
SPLIT = PipelineConfig(groups=(
    GroupConfig(("upscale", "encode"), num_cpus=0.5),
    GroupConfig(("denoise",), num_cpus=0.5),
    GroupConfig(("decode", "refine"), num_cpus=0.5),
), windows_per_segment=1, decode_cpus=0.25, write_cpus=0.25)
FUSED = PipelineConfig(windows_per_segment=1, decode_cpus=0.25, write_cpus=0.25)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    init_ray(None, num_cpus=4)  # logical CPUs: every stage gets a slot on a 2-core machine
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return [str(plain_pyav_mp4(folder / "a.mp4", n=14, height=16, width=24, audio=True)),
            str(plain_pyav_mp4(folder / "b.mp4", n=5, height=16, width=16))]


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory):
    """The in-process engine's output for each clip."""
    out = tmp_path_factory.mktemp("local")
    results = run_local(clips, out, build_pipeline(SPEC), SETTINGS, progress=False)
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
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    results = run_ray([clips[0], str(bad), clips[1]], tmp_path / "out", SPEC, SETTINGS, SPLIT, progress=False)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert str(bad) in results[1].error and "not a video" in results[1].error
    for result in (results[0], results[2]):
        assert_same_video(result.output, reference[result.input])
        assert probe(result.output).frame_rate == NTSC
    assert audio_packets(results[0].output) == audio_packets(clips[0])
    report = [json.loads(line) for line in (tmp_path / "out" / REPORT).read_text().splitlines()]
    assert [(r["input"], r["status"], r["frames"]) for r in report] == [
        (clips[0], "ok", 14), (str(bad), "failed", 0), (clips[1], "ok", 5)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".satecco-parts", "a.mkv", "b.mkv", REPORT]
    assert not any((tmp_path / "out" / ".satecco-parts").iterdir())  # parts are removed once joined

    again = run_ray(clips, tmp_path / "out", SPEC, SETTINGS, SPLIT, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]


def test_a_killed_stage_actor_is_restarted_and_the_output_is_unchanged(clips, reference, tmp_path):
    """SIGKILL the stage actor's process (Ray titles it ``ray::MapWorker(MapBatches(SATeCoStage))``)
    once the first segment is written; Ray Data restarts it and retries its segment."""
    import psutil

    killed = []

    def kill_stage_actor():
        deadline = time.time() + 240
        parts = tmp_path / "out" / ".satecco-parts" / "a.mkv"
        while time.time() < deadline and not killed:
            if parts.is_dir() and any(parts.iterdir()):  # mid-run: some segments are written
                for process in psutil.process_iter(["pid", "cmdline"]):
                    if "SATeCoStage" in " ".join(process.info["cmdline"] or []):
                        os.kill(process.info["pid"], signal.SIGKILL)
                        killed.append(process.info["pid"])
                        break
            time.sleep(0.05)

    thread = threading.Thread(target=kill_stage_actor)
    thread.start()
    results = run_ray([clips[0]], tmp_path / "out", SPEC, SETTINGS, FUSED, progress=False)
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
        results = run_ray(clips, out, spec, SETTINGS, FUSED, progress=False)
        assert [r.status for r in results] == ["failed", "failed"], name
        for result, clip in zip(results, clips, strict=True):
            assert result.error.startswith(f"{clip}: ") and reason in result.error, result.error
            assert "\n" not in result.error
        report = [json.loads(line) for line in (out / REPORT).read_text().splitlines()]
        assert [(r["input"], r["status"]) for r in report] == [(c, "failed") for c in clips]
        assert sorted(p.name for p in out.iterdir()) == [".satecco-parts", REPORT]


def test_killed_driver_resumes_without_redoing_finished_parts(clips, reference, tmp_path):
    """Kill the whole `satecco upscale` process group mid-run, rerun, compare with an uninterrupted run."""
    config = tmp_path / "pipeline.yaml"
    config.write_text("groups:\n  - stages: [upscale, encode, denoise, decode, refine]\n    num_cpus: 1\n"
                      "windows_per_segment: 1\ndecode_cpus: 0.25\nwrite_cpus: 0.25\n")
    assert load_pipeline_config(config).windows_per_segment == 1
    out = tmp_path / "out"
    command = [sys.executable, "-m", "satecco.cli", "upscale", clips[0], "-o", str(out), "--codec", "ffv1",
               "--steps", "1", "--seed", "11", "--pipeline-config", str(config), "--no-progress"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    parts = out / ".satecco-parts" / "a.mkv"
    deadline = time.time() + 240
    while time.time() < deadline and not (parts.is_dir() and list(parts.glob("part-*.mkv"))):
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in parts.glob("part-*.mkv"))
    assert 1 <= len(finished) < 3, finished  # a has 3 segments of one window each
    assert not (out / "a.mkv").exists()

    results = run_ray([clips[0]], out, SPEC, SETTINGS, load_pipeline_config(config), progress=False)
    assert results[0].status == "ok" and results[0].reused_parts == len(finished)
    assert_same_video(out / "a.mkv", reference[clips[0]])


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("configs/pipeline/*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_pipeline_configs_are_valid(path):
    config = load_pipeline_config(path)
    assert [s for g in config.groups for s in g.stages] == ["upscale", "encode", "denoise", "decode", "refine"]


def test_default_layout_follows_the_cluster():
    """Without a pipeline YAML: one fused actor per GPU where there are GPUs, else two CPU actors that
    may each use every core."""
    (gpu,) = default_pipeline_config({"CPU": 64.0, "GPU": 8.0}).groups
    assert (gpu.stages, gpu.num_gpus, gpu.min_actors, gpu.max_actors) == (tuple(STAGES), 1, 1, 8)
    (cpu,) = default_pipeline_config({"CPU": 3.0}).groups
    assert (cpu.num_gpus, cpu.max_actors, cpu.num_cpus, cpu.threads) == (0, 2, 1, "all")
    # Segments are planned before the cluster is seen, with the class default.
    assert {default_pipeline_config(r).windows_per_segment for r in ({"GPU": 1.0}, {})} == \
        {PipelineConfig().windows_per_segment}


def test_driver_imports_neither_torch_nor_diffusers():
    """The Ray engine's driver only plans and joins: `satecco upscale` must not spend seconds importing
    the model libraries before it starts Ray (the stage actors import them)."""
    code = ("import sys, satecco.cli, pipelines.upscale\n"
            "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


JOIN = """
import sys
from fractions import Fraction
from pathlib import Path
import numpy as np
from pipelines.stages import save_share, seam_path
from pipelines.upscale import VideoPlan, join_video
from satecco.upscale import VideoSettings
from satecco.video_io import VideoWriter, read_frames

folder = Path(sys.argv[1])
parts = [str(folder / "part-000000.mkv"), str(folder / "part-000001.mkv")]
for part, value in zip(parts, (10, 200)):
    with VideoWriter(part, 8, 8, Fraction(25), codec="ffv1") as writer:
        for _ in range(3):
            writer.write(np.full((8, 8, 3), value, np.uint8))
ones = np.ones((2, 8, 8, 3), np.float32)
save_share(seam_path(parts[0], "tail"), 10 * ones * [[[[1.0]]], [[[2.0]]]], np.array([1.0, 2.0]), folder)
save_share(seam_path(parts[1], "head"), 200 * ones * [[[[3.0]]], [[[2.0]]]], np.array([3.0, 2.0]), folder)
target = folder.parent / "out.mkv"
plan = VideoPlan("in.mkv", str(target), "25", False, 8, parts, [2], 0, 0, 0.0)
join_video(plan, VideoSettings(codec="ffv1"))
print([int(f[0, 0, 0]) for f in read_frames(target)], folder.exists(), "torch" in sys.modules)
"""


def test_join_blends_shared_frames_between_parts_without_torch(tmp_path):
    """The join task: parts in order with the shared frames blended from both shares between them
    (10*1 + 200*3) / 4 = 152.5 -> 152 (half to even), (10*2 + 200*2) / 4 = 105; then the parts are
    removed. It runs in plain CPU workers, which must not import torch for it."""
    folder = tmp_path / "parts"
    folder.mkdir()
    out = subprocess.run([sys.executable, "-c", JOIN, str(folder)], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == str([10, 10, 10, 152, 105, 200, 200, 200]) + " False False"


def test_pipeline_configs_refuse_splits_that_would_ship_pixels(tmp_path):
    with pytest.raises(ValueError, match="upscale and encode must share an actor"):
        PipelineConfig(groups=(GroupConfig(("upscale",)), GroupConfig(("encode", "denoise", "decode", "refine"))))
    with pytest.raises(ValueError, match="once each, in order"):
        PipelineConfig(groups=(GroupConfig(("upscale", "encode", "decode", "denoise", "refine")),))
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  - stages: [upscale, encode, denoise, decode, refine]\n    min_actors: 3\n"
                   "    max_actors: 2\n")
    with pytest.raises(ValueError, match="bad.yaml: group .* min_actors <= max_actors"):
        load_pipeline_config(bad)
    for threads in ("0", "lots"):
        bad.write_text(f"groups:\n  - stages: [upscale, encode, denoise, decode, refine]\n    threads: {threads}\n")
        with pytest.raises(ValueError, match="bad.yaml: group .* threads must be a positive integer or 'all'"):
            load_pipeline_config(bad)


def test_local_instance_listens_on_loopback_only(tmp_path):
    """In a fresh process (Ray reads its settings on import): every listening socket of the local
    instance's processes is on 127.0.0.1, token authentication is on, and workers run at the driver's
    priority (Ray's default would nice them to 15)."""
    script = (
        "import json, psutil\n"
        "from pipelines.upscale import init_ray\n"
        "init_ray(None, num_cpus=1)\n"
        "import ray\n"
        "import os\n"
        "nice = ray.get(ray.remote(lambda: os.nice(0)).remote())\n"
        "me = psutil.Process()\n"
        "pids = {p.pid for p in [me, *me.children(recursive=True)]}\n"
        "found = [c.laddr.ip for c in psutil.net_connections('inet') if c.status == 'LISTEN' and c.pid in pids]\n"
        "from ray._private.authentication.authentication_token_setup import AUTH_MODE_ENV_VAR\n"
        "print(json.dumps({'listen': found, 'auth': os.environ[AUTH_MODE_ENV_VAR], 'nice': [os.nice(0), nice]}))\n"
        "ray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_worker_niceness")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["auth"] == "token"
    assert report["nice"][1] == report["nice"][0], report["nice"]
    assert report["listen"], "no listening socket found"
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in report["listen"]), report["listen"]


@pytest.mark.parametrize("method", ["bicubic", "framewise"])
def test_ray_engine_honours_the_method(method, clips, tmp_path):
    """The baselines through three actor pools give the local engine's output for the same method (that
    they differ from SATeCo is tests/test_baselines.py's business)."""
    spec = ModelSpec(preset="tiny", steps=1, method=method)
    settings = VideoSettings(codec="ffv1", seed=11, window_overlap=0)
    local = run_local([clips[1]], tmp_path / "local", build_pipeline(spec), settings, progress=False)
    results = run_ray([clips[1]], tmp_path / "ray", spec, settings, SPLIT, progress=False)
    assert results[0].status == "ok"
    expected = np.stack(list(read_frames(local[0].output)))
    assert_same_video(results[0].output, expected)
