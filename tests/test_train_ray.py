"""The training jobs on the shared local Ray instance: two DDP workers (gloo) whose loss falls into a
real MLflow server, a killed worker and a rerun job that both continue from the last checkpoint (one
test, one training run and its rerun), and the `jobs/train_<stage>.py` entry points. Each stage's loss falling is tests/test_training.py's."""

from __future__ import annotations

import json
import runpy
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ray_workers
from media import textured_frames, write
from safetensors.torch import load_file

from satecco.training.config import TrainConfig

pytestmark = pytest.mark.timeout(900)


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


def _registered_checkpoint(run_folder: Path) -> dict | None:
    """The latest checkpoint Ray Train has registered (all workers reported), from its snapshot file."""
    try:
        return json.loads((run_folder / "checkpoint_manager_snapshot.json").read_text()).get("latest_checkpoint_result")
    except (OSError, ValueError):
        return None


def kill_a_worker_after_the_first_checkpoint(run_folder: Path) -> list[int]:
    """Start a thread that SIGKILLs one Ray Train worker once a checkpoint is registered; the list it
    returns gets the killed pid."""
    killed: list[int] = []

    def watch():
        deadline = time.time() + 600
        while time.time() < deadline and not killed:
            if _registered_checkpoint(run_folder):
                workers = ray_workers("RayTrainWorker")
                if workers:
                    workers[-1].send_signal(signal.SIGKILL)
                    killed.append(workers[-1].pid)
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def by_step(metrics) -> dict[int, float]:
    """A metric's history, one value per step: the last logged (a restarted worker group logs again
    the steps after its checkpoint)."""
    return {m.step: m.value for m in sorted(metrics, key=lambda m: (m.step, m.timestamp))}


def test_two_workers_train_into_a_served_mlflow_run_survive_a_killed_worker_and_a_rerun_counts_on(
        ray_local, tmp_path, clip, mlflow_server, monkeypatch):
    """The distributed path end to end: two DDP workers, one killed after the first checkpoint (the
    group restarts from it), the loss falls, a real `mlflow server` holds the whole run (params, every
    step's loss, validation, checkpoints, weights, a pyfunc model that upscales, registered, which
    `satecco upscale --weights models:/NAME@ALIAS` runs), and a rerun with the same name resumes from the
    last checkpoint into the same MLflow run. The run keeps a moving average of its weights, checkpoints
    it and exports it. One test: each training run costs ~50 s of Ray Train and worker start-up on two
    cores."""
    import mlflow

    from satecco.cli import main
    from satecco.jobs.train import fit
    from satecco.video.read import read_frames

    cfg = config(tmp_path, clip, "upscaler", max_steps=16, checkpoint_every=4, validate_every=8, max_failures=2,
                 tracking_uri=mlflow_server, log_checkpoints=True, run_name="served", registered_model="served-x4",
                 experiment="two-workers", ema_decay=0.9)  # its own experiment: the MLflow server is shared
    killed = kill_a_worker_after_the_first_checkpoint(tmp_path / "ray" / cfg.name)
    result = fit(cfg)
    assert killed, "no worker was killed"
    assert result.error is None and result.metrics["step"] == 16
    resumed = result.metrics["resumed_from"]
    assert 0 < resumed < 16 and resumed % 4 == 0  # the restarted group began at a checkpoint, not at 0
    client = mlflow.MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("two-workers").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "served"
    assert run.data.params["stage"] == "upscaler" and run.data.params["lr"] == "0.002"
    losses = by_step(client.get_metric_history(run.info.run_id, "loss"))
    assert sorted(losses) == list(range(1, 17))
    values = [losses[step] for step in sorted(losses)]
    assert np.mean(values[-4:]) < 0.93 * np.mean(values[:4]), values
    psnr = by_step(client.get_metric_history(run.info.run_id, "val_psnr"))
    assert sorted(psnr) == [8, 16] and all(np.isfinite(v) for v in psnr.values())
    assert "val_psnr_bicubic" in run.data.metrics

    def files(path=None):
        for entry in client.list_artifacts(run.info.run_id, path):
            yield from files(entry.path) if entry.is_dir else [entry.path]

    artifacts = set(files())
    assert {"config.yaml", "weights/upscaler.out", "checkpoints/step-0000008/modules.safetensors",
            "checkpoints/step-0000016/optimizer.safetensors", "checkpoints/step-0000016/ema.safetensors"} <= artifacts
    # the final weights are the moving average, not the last step's weights that the checkpoint resumes from
    (last,) = (tmp_path / "ray" / cfg.name).glob("checkpoint_0000016/modules.safetensors")
    exported, raw = load_file(cfg.output), load_file(last)
    assert exported.keys() == raw.keys()
    assert not torch.equal(exported["upscaler.to_pixels.weight"], raw["upscaler.to_pixels.weight"])
    assert any(a.startswith("images/val_bicubic_output_hr") and a.endswith(".png") for a in artifacts)
    mlflow.set_tracking_uri(mlflow_server)
    (model,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert model.source_run_id == run.info.run_id
    upscaled = mlflow.pyfunc.load_model(f"models:/{model.model_id}").predict(np.stack(textured_frames(6, 16)))
    assert upscaled.shape == (6, 64, 64, 3) and upscaled.dtype == np.uint8
    (version,) = client.search_model_versions("name = 'served-x4'")
    assert version.version == "1" and version.run_id == run.info.run_id
    client.set_registered_model_alias("served-x4", "champion", "1")
    monkeypatch.setenv("SATECCO_MODEL_CACHE", str(tmp_path / "models"))
    args = [clip, "--engine", "local", "--method", "upscaler", "--codec", "ffv1", "--no-progress"]
    assert main(["upscale", *args, "-o", str(tmp_path / "file"), "--weights", cfg.output]) == 0
    assert main(["upscale", *args, "-o", str(tmp_path / "registered"), "--weights", "models:/served-x4@champion",
                 "--tracking-uri", mlflow_server]) == 0
    np.testing.assert_array_equal(np.stack(list(read_frames(tmp_path / "registered" / "grating.mkv"))),
                                  np.stack(list(read_frames(tmp_path / "file" / "grating.mkv"))))

    result = fit(replace(cfg, max_steps=20))
    assert result.metrics["resumed_from"] == 16 and result.metrics["step"] == 20
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert sorted(by_step(client.get_metric_history(run.info.run_id, "loss"))) == list(range(1, 21))


@pytest.mark.parametrize("stage", ["base", "upscaler", "unet", "vae", "refiner"])
def test_job_entry_points_refuse_bad_data_before_ray_starts(tmp_path, stage, monkeypatch, capsys):
    """Each `jobs/train_<stage>.py` runs its own stage (run here as `python jobs/train_<stage>.py` would
    run it, without a subprocess; tests/test_ray_job.py runs one through `ray job submit`)."""
    import ray

    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    script = Path(__file__).parents[1] / "jobs" / f"train_{stage}.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--data", str(bad), "--max-steps", "1"])
    was_running = ray.is_initialized()
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(script), run_name="__main__")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "notes.txt" in err and "Traceback" not in err
    assert ray.is_initialized() == was_running  # refused before any Ray instance was joined or started
