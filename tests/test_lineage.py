"""Lineage: with a tracking URI, an upscale job is an MLflow run on a real `mlflow server`, and
--weights takes a registered model (the registering itself: tests/test_train_ray.py)."""

from __future__ import annotations

import json

from media import moving_frames, write

from satecco.cli import main
from satecco.fingerprint import files_digest
from satecco.presets import EMBEDDED_TINY


def test_an_upscale_job_is_an_mlflow_run(tmp_path, mlflow_server, capsys):
    import mlflow

    good = write(tmp_path / "good.mkv", moving_frames(5, 16, 24), "ffv1")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    out = tmp_path / "out"
    code = main(["upscale", str(good), str(bad), "-o", str(out), "--engine", "local", "--method", "bicubic",
                 "--no-progress", "--outscale", "2", "--tracking-uri", mlflow_server, "--experiment", "lineage"])
    assert code == 1  # bad.mp4 fails alone
    assert f"at {mlflow_server}" in capsys.readouterr().out
    client = mlflow.MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("lineage").experiment_id])
    assert run.info.status == "FINISHED"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["model.method"] == "bicubic" and params["video.outscale"] == "2.0" and params["engine"] == "local"
    assert tags["satecco.weights_sha256"] == files_digest(str(EMBEDDED_TINY / "satecco.safetensors"))
    assert tags["satecco.base_model_sha256"] == files_digest(str(EMBEDDED_TINY))
    assert (metrics["videos_ok"], metrics["videos_failed"], metrics["frames_written"]) == (1, 1, 5)
    assert metrics["frames_per_second"] > 0
    videos = json.loads(open(client.download_artifacts(run.info.run_id, "videos.json", str(tmp_path))).read())
    rows = dict(zip(videos["columns"], zip(*videos["data"], strict=True), strict=True))
    assert rows["status"] == ("ok", "failed") and rows["frames"] == (5, 0) and "bad.mp4" in rows["error"][1]
    report = client.download_artifacts(run.info.run_id, "satecco-report.jsonl", str(tmp_path))
    assert [json.loads(line)["status"] for line in open(report)] == ["ok", "failed"]


def test_registered_weights_that_cannot_be_found_are_refused_in_one_line(tmp_path, mlflow_server, capsys,
                                                                          monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    clip = write(tmp_path / "clip.mkv", moving_frames(3, 16, 24), "ffv1")
    args = ["upscale", str(clip), "-o", str(tmp_path / "out"), "--engine", "local", "--no-progress"]
    assert main([*args, "--weights", "models:/nothing-here/2", "--tracking-uri", mlflow_server]) == 2
    assert "--weights models:/nothing-here/2: " in capsys.readouterr().err
    assert main([*args, "--weights", "models:/a-model@champion"]) == 2  # no registry to ask
    assert "give --tracking-uri (or set MLFLOW_TRACKING_URI) for its registry" in capsys.readouterr().err
