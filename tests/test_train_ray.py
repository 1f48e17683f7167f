"""The training jobs on a real local Ray cluster: every stage's loss falls with 2 workers (gloo), a
killed worker and a restarted job both continue from the last checkpoint, MLflow (a real server)
holds the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest
from media import free_port, write

from satecco.training.config import TrainConfig

pytestmark = pytest.mark.timeout(900)


def textured_frames(n=12, size=64):
    """Drifting gratings: detail that bicubic x4 loses and a network can learn to restore."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = []
    for i in range(n):
        u, v = x + 1.5 * i, y + 0.5 * i
        base = 0.5 + 0.25 * np.sin(u / 2.1) * np.cos(v / 3.3) + 0.2 * np.sin((u + v) / 1.7)
        frames.append((np.stack([base, base ** 2, 1 - base], axis=-1).clip(0, 1) * 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def ray_instance():
    from satecco.cluster import init_ray

    init_ray(None, num_cpus=4)  # logical CPUs: two workers plus the data tasks on a 2-core machine
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return str(write(tmp_path_factory.mktemp("data") / "grating.mkv", textured_frames(), "ffv1"))


def config(tmp_path, clip, stage, **changes) -> TrainConfig:
    base = TrainConfig(stage=stage, data=(clip,), val=clip, frames=6, crop=32, val_crop=32, batch_size=1,
                       lr=2e-3, max_steps=16, checkpoint_every=8, validate_every=8, log_every=1, workers=2,
                       cpus_per_worker=1, storage_path=str(tmp_path / "ray"), log_checkpoints=False,
                       tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", output=str(tmp_path / f"{stage}.out"))
    return replace(base, **changes)


def history(config: TrainConfig, key: str) -> list[float]:
    import mlflow

    client = mlflow.MlflowClient(config.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(config.experiment).experiment_id],
                              filter_string=f"attributes.run_name = '{config.name}'")
    assert len(runs) == 1
    return [m.value for m in sorted(client.get_metric_history(runs[0].info.run_id, key), key=lambda m: m.step)]


# The noise loss draws a timestep per clip, so stage 2's single-batch losses scatter most: more steps.
@pytest.mark.parametrize("stage, key, steps", [("base", "vae_l1", 24), ("upscaler", "loss", 16), ("unet", "loss", 30),
                                               ("vae", "loss", 16), ("refiner", "loss", 16)])
def test_each_stage_loss_falls_with_two_workers(ray_instance, tmp_path, clip, stage, key, steps):
    from jobs.train import fit

    cfg = config(tmp_path, clip, stage, max_steps=steps, base_fraction_vae=1.0, lr=2e-3)
    result = fit(cfg)
    assert result.error is None and result.metrics["step"] == steps
    losses = history(cfg.resolved(), key)
    assert len(losses) == steps
    first, last = np.mean(losses[:steps // 4]), np.mean(losses[-(steps // 4):])
    assert last < 0.93 * first, losses
    assert Path(cfg.output).exists()


def _train_workers() -> list[psutil.Process]:
    """This Ray instance's training workers (children of its raylet; other instances may be running)."""
    from ray._private import ray_constants
    from ray._private.worker import _global_node

    raylet = _global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    return [p for p in psutil.Process(raylet).children()
            if "RayTrainWorker" in " ".join(p.cmdline())]


def _registered_checkpoint(run_folder: Path) -> dict | None:
    """The latest checkpoint Ray Train has registered (all workers reported), from its snapshot file."""
    try:
        return json.loads((run_folder / "checkpoint_manager_snapshot.json").read_text()).get("latest_checkpoint_result")
    except (OSError, ValueError):
        return None


def test_killed_worker_resumes_from_the_last_checkpoint(ray_instance, tmp_path, clip):
    from jobs.train import fit

    cfg = config(tmp_path, clip, "upscaler", max_steps=160, checkpoint_every=10, validate_every=1000,
                 log_every=10, max_failures=2)
    run_folder = tmp_path / "ray" / cfg.name
    killed: list[int] = []

    def kill_after_first_checkpoint():
        deadline = time.time() + 600
        while time.time() < deadline and not killed:
            if _registered_checkpoint(run_folder):
                workers = _train_workers()
                if workers:
                    workers[-1].send_signal(signal.SIGKILL)
                    killed.append(workers[-1].pid)
            time.sleep(0.1)

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    result = fit(cfg)
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    assert result.error is None and result.metrics["step"] == 160
    resumed = result.metrics["resumed_from"]
    assert 0 < resumed < 160 and resumed % 10 == 0  # the restarted group began at a checkpoint, not at 0


def test_restarted_job_with_the_same_name_counts_on(ray_instance, tmp_path, clip):
    from jobs.train import fit

    cfg = config(tmp_path, clip, "upscaler", max_steps=8, checkpoint_every=4, validate_every=1000)
    assert fit(cfg).metrics["step"] == 8
    result = fit(replace(cfg, max_steps=12))
    assert result.metrics["resumed_from"] == 8 and result.metrics["step"] == 12
    assert len(history(cfg.resolved(), "loss")) == 12  # one MLflow run, steps 1..12


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.time() + 300  # a busy 2-core machine starts it in ~10-60 s
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_mlflow_server_holds_the_whole_run(ray_instance, tmp_path, clip, mlflow_server):
    import mlflow

    from jobs.train import fit

    cfg = config(tmp_path, clip, "upscaler", max_steps=6, checkpoint_every=3, validate_every=3,
                 tracking_uri=mlflow_server, log_checkpoints=True, run_name="served")
    assert fit(cfg).error is None
    client = mlflow.MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("satecco").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "served"
    assert run.data.params["stage"] == "upscaler" and run.data.params["lr"] == "0.002"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4, 5, 6]
    psnr = client.get_metric_history(run.info.run_id, "val_psnr")
    assert [m.step for m in psnr] == [3, 6] and all(np.isfinite(m.value) for m in psnr)
    assert "val_psnr_bicubic" in run.data.metrics

    def files(path=None):
        for entry in client.list_artifacts(run.info.run_id, path):
            yield from files(entry.path) if entry.is_dir else [entry.path]

    artifacts = set(files())
    assert {"config.yaml", "weights/upscaler.out", "checkpoints/step-0000003/modules.safetensors",
            "checkpoints/step-0000006/optimizer.safetensors"} <= artifacts
    assert any(a.startswith("images/val_bicubic_output_hr") and a.endswith(".png") for a in artifacts)
    mlflow.set_tracking_uri(mlflow_server)
    (model,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert model.source_run_id == run.info.run_id
    upscaled = mlflow.pyfunc.load_model(f"models:/{model.model_id}").predict(np.stack(textured_frames(6, 16)))
    assert upscaled.shape == (6, 64, 64, 3) and upscaled.dtype == np.uint8


@pytest.mark.parametrize("stage", ["base", "upscaler", "unet", "vae", "refiner"])
def test_job_entry_points_refuse_bad_data_before_ray_starts(tmp_path, stage):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    done = subprocess.run([sys.executable, f"jobs/train_{stage}.py", "--data", str(bad), "--max-steps", "1"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert done.returncode == 2 and "notes.txt" in done.stderr and "Traceback" not in done.stderr


def test_job_entry_point_trains_as_ray_job_submit_would_run_it(tmp_path, clip):
    """`python jobs/train_upscaler.py ...` in its own process (its own local Ray instance)."""
    output = tmp_path / "upscaler.safetensors"
    done = subprocess.run(
        [sys.executable, "jobs/train_upscaler.py", "--data", clip, "--max-steps", "2", "--output", str(output),
         "--storage-path", str(tmp_path / "ray"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--config", str(_tiny_config(tmp_path))],
        capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "upscaler done at step 2" in done.stdout
    from satecco.checkpoints import read_weight_configs

    assert "upscaler" in read_weight_configs(output)


def _tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("frames: 6\ncrop: 32\nbatch_size: 1\ncheckpoint_every: 2\nvalidate_every: 2\n")
    return path
