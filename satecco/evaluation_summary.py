"""What ``satecco evaluate`` keeps of its results: ``REPORT_DIR/metrics.json`` and an MLflow run.

:func:`summarize` turns the :class:`~satecco.evaluate.ClipResult` of every clip pair into the content
of ``metrics.json``: per clip and mean per method, failures, unavailable metrics with their reasons,
and the :func:`conventions` used (``"gt": null`` when the predictions were measured without ground truth). :func:`write_metrics_json` writes it atomically in strict JSON
(non-finite values as the strings ``"inf"``/``"-inf"``/``"nan"``); :func:`log_to_mlflow` logs it,
with the report folder, to one MLflow run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from satecco.evaluate import FRAME_METRICS, ClipResult, EvalSettings
from satecco.storage import atomic_output

#: How the temporal metrics were made, with ground truth (True) and without (False).
TEMPORAL = {
    True: "tOF, tLPIPS (TecoGAN) and warping error (Lai et al. 2018, Farneback flow of the gt) averaged over "
          "consecutive frame pairs; no crop_border; tOF in pixels and tLPIPS unscaled",
    False: "warping error (Lai et al. 2018) with the prediction's own Farneback flow: frame t-1 warped to t by "
           "flow(pred_t, pred_t-1), occlusions from flow(pred_t-1, pred_t); averaged over consecutive frame "
           "pairs; no crop_border",
}


def conventions(settings: EvalSettings) -> dict:
    """How the numbers were made, as written into ``metrics.json`` (see :mod:`satecco.evaluate`)."""
    fidelity = {"psnr_ssim": "BasicSR: float64, peak 255, SSIM 11x11 Gaussian window sigma 1.5, valid region"}
    return {
        "pixels": "8-bit RGB in [0, 255], as decoded from the files",
        "reference": "ground truth (--gt)" if settings.reference
                     else "none: no ground truth was given, only no-reference metrics were computed",
        "averaging": "frames then clips",
        "crop_border": settings.crop_border,
        "crop_border_applies_to": [m for m in FRAME_METRICS if m in settings.metrics],
        "y_channel": settings.y_channel,
        "y_channel_applies_to": [m for m in ("psnr", "ssim") if m in settings.metrics],
        **(fidelity if settings.reference else {}),
        "temporal": TEMPORAL[settings.reference],
        "non_finite": "\"inf\"/\"nan\" strings stand for non-finite values (e.g. PSNR of identical frames)",
    }


def summarize(results: list[ClipResult], settings: EvalSettings, preds: dict[str, str], gt: str | None) -> dict:
    """The content of ``metrics.json``: per clip and mean per method, failures, unavailable metrics with
    their reasons, and the conventions used; ``gt`` ``None``: measured without ground truth."""
    methods = {}
    for method, root in preds.items():
        mine = [r for r in results if r.method == method]
        ok = [r for r in mine if not r.error]
        entry = {"pred": root,
                 "clips": {r.clip: {"pred": r.pred, "gt": r.gt, "frames": r.frames, "metrics": r.values,
                                    "unavailable": r.unavailable, "per_frame": r.per_frame} for r in ok},
                 "failed": {r.clip: r.error for r in mine if r.error},
                 "mean": {}, "mean_unavailable": {}, "clips_in_mean": len(ok)}
        for name in settings.metrics:
            missing = [r for r in ok if name not in r.values]
            if ok and not missing:
                entry["mean"][name] = float(np.mean([r.values[name] for r in ok]))
            elif ok:
                entry["mean_unavailable"][name] = f"{missing[0].clip}: {missing[0].unavailable.get(name, 'not computed')}"
            else:
                entry["mean_unavailable"][name] = "no clip was evaluated"
        methods[method] = entry
    unavailable = {}
    for name in settings.metrics:
        reasons = [r.unavailable[name] for r in results if not r.error and name in r.unavailable]
        if reasons and not any(name in r.values for r in results):
            unavailable[name] = reasons[0]
    return {"gt": gt, "metrics": list(settings.metrics), "conventions": conventions(settings),
            "unavailable": unavailable, "methods": methods}


def _jsonable(value):
    """``value`` with non-finite floats as strings, so that ``metrics.json`` is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": strict JSON has no such numbers
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_metrics_json(report_dir: str | Path, summary: dict) -> Path:
    """``REPORT_DIR/metrics.json``, written atomically in strict JSON."""
    path = Path(report_dir) / "metrics.json"
    text = json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n"
    with atomic_output(path) as partial:
        partial.write_text(text)
    return path


def log_to_mlflow(report_dir: str | Path, summary: dict, tracking_uri: str, experiment: str = "satecco-evaluate",
                  run_name: str | None = None) -> str:
    """Log the settings as params (``gt`` ``"none"`` without ground truth), each method's means (and
    per-clip scores) as metrics, and the report folder as artifacts, to one MLflow run; returns its run
    id. Non-finite values stay in metrics.json."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        conventions = summary["conventions"]
        params = {"gt": summary["gt"] or "none", "metrics": ",".join(summary["metrics"]),
                  "crop_border": conventions["crop_border"], "y_channel": conventions["y_channel"],
                  "averaging": conventions["averaging"], "reference": conventions["reference"]}
        params.update({f"pred.{method}": entry["pred"] for method, entry in summary["methods"].items()})
        mlflow.log_params(params)
        values = {}
        for method, entry in summary["methods"].items():
            values.update({f"{method}.{name}": v for name, v in entry["mean"].items()})
            for clip, scores in entry["clips"].items():
                values.update({f"{method}.{_key(clip)}.{name}": v for name, v in scores["metrics"].items()})
        mlflow.log_metrics({k: v for k, v in values.items() if math.isfinite(v)})
        mlflow.log_artifacts(str(report_dir))
        return run.info.run_id


def _key(name: str) -> str:
    """A clip name as MLflow accepts it in a metric key (letters, digits, ``_-. /``)."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)
