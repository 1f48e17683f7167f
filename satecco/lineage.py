"""Lineage of upscale jobs: with a tracking URI, every ``satecco upscale`` run is an MLflow run.

It records what made the outputs: every model and video setting as a parameter, the SHA-256 of the
SATeCo weights and of the base model folder (the digests the part files' fingerprint uses), per video
its input, output, status, frames and seconds (a table artifact), totals and throughput as metrics, and
the run report (``OUTDIR/satecco-report.jsonl``) as an artifact.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict

from satecco import storage
from satecco.fingerprint import files_digest
from satecco.inputs import REPORT, VideoResult, VideoSettings
from satecco.presets import ModelSpec

TRACKING_ENV = "MLFLOW_TRACKING_URI"


class UpscaleRun:
    """A context manager around one upscale job: opens the MLflow run, logs the settings and model
    digests; :meth:`finish` logs the results. An exception inside marks the run FAILED."""

    def __init__(self, tracking_uri: str, experiment: str, spec: ModelSpec, settings: VideoSettings, engine: str,
                 outdir: str, weights_uri: str | None = None):
        self.tracking_uri, self.experiment, self.weights_uri = tracking_uri, experiment, weights_uri
        self.spec, self.settings, self.engine, self.outdir = spec, settings, engine, outdir
        self.run_id: str | None = None

    def __enter__(self) -> UpscaleRun:
        import mlflow

        # mlflow.set_tracking_uri also sets $MLFLOW_TRACKING_URI, which would send every later job of
        # this process to MLflow: __exit__ puts it back.
        self.previous_env = os.environ.get(TRACKING_ENV)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment)
        self.run_id = mlflow.start_run().info.run_id
        model = self.spec.with_embedded_default()
        params = {f"model.{k}": v for k, v in asdict(self.spec).items()}
        params.update({f"video.{k}": v for k, v in asdict(self.settings).items()})
        params.update({"engine": self.engine, "outdir": self.outdir})
        mlflow.log_params({k: ",".join(v) if isinstance(v, tuple) else v for k, v in params.items()})
        mlflow.set_tags({"satecco.command": "upscale", "satecco.weights_sha256": files_digest(model.weights),
                         "satecco.base_model_sha256": files_digest(model.base_model),
                         "satecco.weights": model.weights, "satecco.base_model": model.base_model,
                         "satecco.weights_given": self.weights_uri})
        self.started = time.perf_counter()
        return self

    def finish(self, results: list[VideoResult]) -> None:
        """Per-video table, totals, throughput and the run report."""
        import mlflow

        wall = time.perf_counter() - self.started
        frames = sum(r.frames for r in results if r.status == "ok")
        counts = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
        mlflow.log_metrics({"videos_ok": counts["ok"], "videos_skipped": counts["skipped"],
                            "videos_failed": counts["failed"], "frames_written": frames, "wall_seconds": wall,
                            "frames_per_second": frames / wall if wall > 0 else 0.0})
        columns = ("input", "output", "status", "frames", "seconds", "error")
        mlflow.log_table({c: [getattr(r, c) for r in results] for c in columns}, artifact_file="videos.json")
        report = storage.join(self.outdir, REPORT)
        if storage.exists(report):
            mlflow.log_artifact(storage.local_copy(report))

    def __exit__(self, kind, error, trace) -> None:
        import mlflow

        mlflow.end_run(status="FAILED" if kind else "FINISHED")
        if self.previous_env is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = self.previous_env
