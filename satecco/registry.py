"""Weights from the MLflow model registry: ``satecco upscale --weights models:/NAME@ALIAS`` (or ``/VERSION``).

``satecco train ... --registered-model NAME`` registers each stage's final model (the pyfunc model that
holds SATeCo's weights, and the base model folder where the stage had one). Here the URI is pinned to
its version and that version's files are downloaded once into the model cache
(``$SATECCO_MODEL_CACHE``, default ``~/.cache/satecco/models``); the job then runs on those files as on
any ``--weights FILE``. On a multi-node Ray cluster, point ``SATECCO_MODEL_CACHE`` at a folder every
node reads.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from satecco.presets import ModelSpec

PREFIX = "models:/"


def model_cache() -> Path:
    return Path(os.environ.get("SATECCO_MODEL_CACHE", Path.home() / ".cache" / "satecco" / "models"))


def resolve_registered(spec: ModelSpec, tracking_uri: str | None) -> ModelSpec:
    """``spec`` with a registered model's downloaded files in place of a ``models:/`` ``weights`` URI (its
    base model too, unless ``spec`` names one); unchanged otherwise. :class:`ValueError` naming the URI
    when it cannot be resolved."""
    uri = spec.weights or ""
    if not uri.startswith(PREFIX):
        return spec
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", uri)
    if not match:
        raise ValueError(f"--weights {uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    if not tracking_uri:
        raise ValueError(f"--weights {uri}: give --tracking-uri (or set MLFLOW_TRACKING_URI) for its registry")
    import mlflow
    from mlflow.exceptions import MlflowException

    name, alias, number = match.groups()
    client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
        folder = model_cache() / f"{name}-v{version.version}"
        if not (folder / "MLmodel").is_file():
            _download(f"{PREFIX}{name}/{version.version}", tracking_uri, folder)
    except MlflowException as error:
        raise ValueError(f"--weights {uri}: {error.message}") from error
    artifacts = mlflow.models.Model.load(str(folder / "MLmodel")).flavors["python_function"].get("artifacts", {})
    if "weights" not in artifacts:
        raise ValueError(f"--weights {uri}: version {version.version} holds no SATeCo weights (not a satecco model)")
    base_model = spec.base_model or (str(folder / artifacts["base_model"]["path"]) if "base_model" in artifacts else None)
    return replace(spec, weights=str(folder / artifacts["weights"]["path"]), base_model=base_model)


def _download(uri: str, tracking_uri: str, folder: Path) -> None:
    """The model version's files into ``folder``, whole or not at all."""
    from mlflow.artifacts import download_artifacts

    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        local = Path(download_artifacts(artifact_uri=uri, dst_path=str(scratch), tracking_uri=tracking_uri,
                                              registry_uri=tracking_uri))
        os.replace(local, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
