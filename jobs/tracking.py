"""MLflow from rank 0: parameters, config, losses, validation PSNR and frames, checkpoints, weights, model.

The run's id travels in every checkpoint, so a resumed job (a restarted worker or a relaunched
driver) keeps logging to the same MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import satecco
from satecco.training.config import TrainConfig


def artifact_root(tracking_uri: str) -> str | None:
    """``mlartifacts/`` next to a SQLite store (MLflow's default, ``./mlruns``, would land in the
    worker's own folder); a tracking server chooses its own."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        return (Path(tracking_uri[len(prefix):]).parent / "mlartifacts").resolve().as_uri()
    return None


class Tracker:
    """One MLflow run (started, or reopened with ``run_id``)."""

    def __init__(self, config: TrainConfig, run_id: str | None = None):
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(config.tracking_uri)
        experiment = mlflow.get_experiment_by_name(config.experiment)
        experiment_id = (experiment.experiment_id if experiment else
                         mlflow.create_experiment(config.experiment, artifact_location=artifact_root(config.tracking_uri)))
        self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else config.name,
                                    experiment_id=experiment_id)
        self.run_id = self.run.info.run_id
        if run_id is None:
            params = {k: v for k, v in config.as_dict().items() if k not in ("tracking_uri",)}
            params["data"] = ",".join(config.data)
            mlflow.log_params(params)
            mlflow.log_dict(config.as_dict(), "config.yaml")
            mlflow.set_tags({"satecco.stage": config.stage, "satecco.preset": config.preset})

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics(values, step=step)

    def frame(self, image: np.ndarray, key: str, step: int) -> None:
        """An ``(H, W, 3)`` uint8 image under ``key`` at ``step``."""
        self.mlflow.log_image(image, key=key, step=step)

    def checkpoint(self, folder: Path, step: int) -> None:
        self.mlflow.log_artifacts(str(folder), artifact_path=f"checkpoints/step-{step:07d}")

    def final(self, config: TrainConfig, output: Path) -> None:
        """The final weights as artifacts; stages 1–4 also as an MLflow model that upscales frames."""
        mlflow = self.mlflow
        if output.is_dir():
            mlflow.log_artifacts(str(output), artifact_path="weights")
            return
        mlflow.log_artifact(str(output), artifact_path="weights")
        artifacts = {"weights": str(output)}
        if config.base_model:
            artifacts["base_model"] = config.base_model
        from satecco.training import mlflow_model

        # Requirements stated, not inferred: inference loads the model in a subprocess (13 s a run here),
        # and the satecco package brings everything else the model needs.
        mlflow.pyfunc.log_model(name="model", python_model=mlflow_model.__file__, artifacts=artifacts,
                                model_config={"preset": config.preset},
                                pip_requirements=[f"satecco=={satecco.__version__}"],
                                registered_model_name=config.registered_model)

    def close(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)
