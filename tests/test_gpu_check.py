"""benchmarks/gpu_check.py, the one GPU check: its CPU dry run (--device cpu --tiny), so that it cannot rot,
and torch.compile of the guided UNet step and VAE decoder (--compile) against eager on the CPU."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from satecco.build import build_model, build_pipeline
from satecco.cli import _model_spec
from satecco.options import UpscaleOptions
from satecco.presets import ModelSpec, get_preset

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_check

    return gpu_check


def test_dry_run_reports_every_section(gpu_check, capsys):
    report = gpu_check.main(["--device", "cpu", "--tiny", "--repeat", "1", "--skip", "compile,engines"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(json.dumps(report))
    assert set(report["components"]) == {"upscaler", "vae encoder", "latent encoder", "unet step", "vae decoder",
                                         "refiner"}
    assert all(row["seconds"] > 0 and row["tflop"] > 0 for row in report["components"].values())
    assert [row["steps"] for row in report["per_frame"]["eager"]] == [1, 50]  # the tiny preset's one step, and 50
    assert report["peer"]["steps"] == 50 and report["peer"]["satecco_over_peer"] > 0
    assert report["peer"]["unet step"]["tflop"] > 0  # the SD x4 upscaler's architecture, narrowed
    assert set(report["training"]) == {"upscaler", "unet", "vae", "refiner"}
    assert all(math.isfinite(row["loss"]) and row["seconds"] > 0 for row in report["training"].values())


def test_compiled_unet_step_and_decoder_equal_eager_in_one_graph_each(gpu_check, capsys):
    """Dynamo captures the guided UNet step and VAE decoder, adapter hooks and guidance included, without
    a graph break ("eager" backend: the capture inductor compiles; inductor itself takes minutes here)."""
    torch._dynamo.reset()
    model, _ = build_model(get_preset("tiny"))
    lr = torch.rand(1, 6, 3, 16, 16) * 2 - 1
    rows = gpu_check.compiled_components(model.eval(), lr, 6, torch.device("cpu"), 1, backend="eager")
    assert set(rows) == {"unet step", "vae decoder"}
    assert all(row[3] < 1e-5 for row in rows.values()), rows  # against eager's output
    assert not torch._dynamo.utils.counters["graph_break"]
    err = capsys.readouterr().err
    assert "torch.compile of the UNet step" in err and "torch.compile of the VAE decoder" in err


def test_the_compile_option_compiles_the_pipeline():
    options = UpscaleOptions(inputs=["in.mp4"], output="out", compile=True)
    assert _model_spec(options).compile == "inductor"
    pipeline = build_pipeline(replace(ModelSpec(preset="tiny"), compile="eager"))
    assert hasattr(pipeline.model.predict_noise, "__wrapped__") and hasattr(pipeline.model.decode, "__wrapped__")
    assert not hasattr(build_pipeline(ModelSpec(preset="tiny")).model.predict_noise, "__wrapped__")
