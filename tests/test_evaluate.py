"""`satecco evaluate` as a user runs it: REDS4-style frame folders and videos, known answers, bad clips
failing alone, the Ray engine, MLflow, and the report rendered by a real headless Chromium."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from media import moving_frames, write

from satecco.cli import main
from satecco.evaluate import EvalSettings, evaluate_locally, list_clips, pair_clips
from satecco.metrics.fidelity import psnr

HEIGHT, WIDTH = 48, 64  # the smallest frames that TecoGAN's tOF crop accepts


def frames(n: int, offset: int = 0) -> list[np.ndarray]:
    """Moving colour ramps kept within [0, 247] so that adding up to 8 never clips."""
    return [(f.astype(int) * 247 // 255 + offset).astype(np.uint8) for f in moving_frames(n, HEIGHT, WIDTH)]


def png_folder(folder: Path, clip: list[np.ndarray]) -> Path:
    return write(folder, clip, "png")


@pytest.fixture
def dataset(tmp_path):
    """gt/ and pred/ in the REDS4 layout: clip ``exact`` (pred = gt), ``offset4`` (pred = gt + 4 everywhere),
    ``offset2`` as a lossless video (pred = gt + 2), and bad clips: ``short`` (one frame fewer), ``small``
    (another size), ``broken`` (an unreadable frame), ``nogt`` (pred only), ``nopred`` (gt only)."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for name, n in [("exact", 3), ("offset4", 4), ("short", 3), ("small", 2), ("broken", 2), ("nopred", 2)]:
        png_folder(gt / name, frames(n))
    write(gt / "offset2.mkv", frames(3), "ffv1")
    png_folder(pred / "exact", frames(3))
    png_folder(pred / "offset4", frames(4, offset=4))
    write(pred / "offset2.mkv", frames(3, offset=2), "ffv1")
    png_folder(pred / "short", frames(2))
    png_folder(pred / "small", [f[:, :32] for f in frames(2)])
    png_folder(pred / "broken", frames(2))
    (pred / "broken" / "000001.png").write_text("not a png")
    png_folder(pred / "nogt", frames(2))
    return gt, pred


def test_layouts_and_pairing(dataset, tmp_path):
    gt, pred = dataset
    assert list(list_clips(str(gt))) == ["broken", "exact", "nopred", "offset2", "offset4", "short", "small"]
    assert list_clips(str(gt / "exact")) == {"exact": str(gt / "exact")}  # a frame folder is one clip
    pairs = {p.clip: p for p in pair_clips({"m": str(pred)}, str(gt))}
    assert pairs["nogt"].gt is None and pairs["nopred"].pred is None
    assert pairs["offset2"].pred == str(pred / "offset2.mkv")
    # two single clips pair whatever their names
    (single,) = pair_clips({"m": str(pred / "offset4")}, str(gt / "exact"))
    assert (single.pred, single.gt) == (str(pred / "offset4"), str(gt / "exact"))
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "nowhere"))):
        pair_clips({"m": str(tmp_path / "nowhere")}, str(gt))


def test_evaluate_known_answers_and_bad_clips_fail_alone(dataset, tmp_path, capsys):
    gt, pred = dataset
    report = tmp_path / "report"
    code = main(["evaluate", "--engine", "local", "--pred", f"mine={pred}", "--gt", str(gt), "-o", str(report),
                 "--metrics", "psnr", "ssim", "lpips", "tof", "warping_error"])
    captured = capsys.readouterr()
    assert code == 1
    summary = json.loads((report / "metrics.json").read_text())  # strict JSON: "inf" is a string
    mine = summary["methods"]["mine"]
    clips = mine["clips"]
    assert sorted(clips) == ["exact", "offset2", "offset4"]
    # a constant offset d on every pixel: MSE = d^2, PSNR = 20 log10(255 / d)
    assert clips["offset4"]["metrics"]["psnr"] == pytest.approx(20 * math.log10(255 / 4), abs=1e-9)
    assert clips["offset2"]["metrics"]["psnr"] == pytest.approx(20 * math.log10(255 / 2), abs=1e-9)
    assert clips["exact"]["metrics"]["psnr"] == "inf" and clips["exact"]["metrics"]["ssim"] == 1.0
    assert clips["exact"]["metrics"]["tof"] == 0.0
    assert clips["offset4"]["frames"] == 4 and len(clips["offset4"]["per_frame"]["psnr"]) == 4
    assert len(clips["offset4"]["per_frame"]["tof"]) == 3  # consecutive pairs
    assert mine["mean"]["psnr"] == "inf"  # frames then clips: one identical clip makes the mean inf, as in BasicSR
    assert mine["mean"]["ssim"] == pytest.approx(np.mean([clips[c]["metrics"]["ssim"] for c in clips]))
    # no number for an unavailable metric, anywhere
    assert "no weights folder" in summary["unavailable"]["lpips"]
    assert all("lpips" not in c["metrics"] for c in clips.values()) and "lpips" not in mine["mean"]
    assert summary["conventions"]["averaging"] == "frames then clips"
    assert summary["conventions"]["crop_border"] == 0 and summary["conventions"]["y_channel"] is False
    # every bad clip is reported with the file to look at
    failed = mine["failed"]
    assert sorted(failed) == ["broken", "nogt", "nopred", "short", "small"]
    assert str(pred / "short") in failed["short"] and "2 frames" in failed["short"] and "3" in failed["short"]
    assert str(pred / "small") in failed["small"] and "32x48" in failed["small"] and "64x48" in failed["small"]
    assert str(pred / "broken" / "000001.png") in failed["broken"]
    assert str(pred / "nogt") in failed["nogt"] and "no ground truth" in failed["nogt"]
    assert str(gt / "nopred") in failed["nopred"] and "no prediction" in failed["nopred"]
    assert "5 of 8 clip pairs failed" in captured.err
    assert (report / "index.html").is_file()


def test_y_channel_and_crop_border(dataset, tmp_path):
    gt, pred = dataset
    settings = EvalSettings(metrics=("psnr",), y_channel=True, crop_border=4)
    (result,) = evaluate_locally(pair_clips({"m": str(pred / "offset4")}, str(gt / "offset4")), settings)
    # BT.601: Y rises by 4 * (65.481 + 128.553 + 24.966) / 255 = 4 * 219 / 255
    assert result.values["psnr"] == pytest.approx(20 * math.log10(255 / (4 * 219 / 255)), abs=1e-9)
    reference = np.mean([psnr(p, g, crop_border=4, y_channel=True)
                         for p, g in zip(frames(4, offset=4), frames(4), strict=True)])
    assert result.values["psnr"] == pytest.approx(reference, abs=1e-12)


def test_report_regions_are_shared_by_methods(dataset, tmp_path):
    gt, pred = dataset
    pairs = pair_clips({"a": str(pred / "offset4"), "b": str(gt / "offset4")}, str(gt / "offset4"))
    results = evaluate_locally(pairs, EvalSettings(metrics=("psnr",)))
    a, b = results
    assert a.region == b.region
    y, x, size = a.region
    clip = frames(4)
    np.testing.assert_array_equal(b.crop, clip[2][y:y + size, x:x + size])  # the middle frame's crop
    np.testing.assert_array_equal(a.gt_profile, np.stack([f[y + size // 2] for f in clip]))  # (T, W, 3)
    np.testing.assert_array_equal(a.profile.astype(int) - a.gt_profile, 4)


def test_evaluate_logs_to_mlflow(dataset, tmp_path, monkeypatch):
    import mlflow

    gt, pred = dataset
    monkeypatch.chdir(tmp_path)  # the sqlite store keeps artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    code = main(["evaluate", "--engine", "local", "--pred", f"mine={pred / 'offset4'}", "--gt",
                 str(gt / "offset4"), "-o", str(tmp_path / "report"), "--metrics", "psnr", "ssim"])
    assert code == 0
    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("satecco-evaluate").experiment_id])
    assert run.data.params["pred.mine"] == str(pred / "offset4") and run.data.params["crop_border"] == "0"
    assert run.data.metrics["mine.psnr"] == pytest.approx(20 * math.log10(255 / 4))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "index.html", "images"} <= artifacts


def test_ray_engine_equals_local_engine(dataset, tmp_path, ray_local):
    from satecco.pipelines.evaluate import evaluate_on_ray

    gt, pred = dataset
    pairs = pair_clips({"mine": str(pred)}, str(gt))
    settings = EvalSettings(metrics=("psnr", "ssim", "tof"))
    remote = evaluate_on_ray(pairs, settings, actors=2, num_cpus=0.5)
    local = evaluate_locally(pairs, settings)
    assert [(r.method, r.clip) for r in remote] == [(p.method, p.clip) for p in pairs]
    for a, b in zip(remote, local, strict=True):
        assert a.error == b.error and a.values == b.values and a.per_frame == b.per_frame
        if not a.error:
            np.testing.assert_array_equal(a.profile, b.profile)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does)")
def test_report_renders_in_headless_chromium(dataset, tmp_path):
    """Every image of index.html loads in a real browser and the tables are there."""
    gt, pred = dataset
    report = tmp_path / "report"
    main(["evaluate", "--engine", "local", "--pred", f"satecco={pred}", "--pred", f"copy={gt}", "--gt", str(gt),
          "-o", str(report), "--metrics", "psnr", "tof"])
    page = (report / "index.html").read_text()
    probe = ("<script>addEventListener('load', () => { const i = [...document.images];"
             " document.body.dataset.images = i.length;"
             " document.body.dataset.loaded = i.filter(x => x.complete && x.naturalWidth > 0).length; });</script>")
    (report / "check.html").write_text(page.replace("</body>", probe + "</body>"))
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", (report / "check.html").as_uri()], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout).group(0)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-loaded="(\d+)"', body).group(1))
    # 3 clips of both methods x (3 crops + 3 profiles + 2 plots) + 4 clips of `copy` only x (2 + 2 + 2)
    assert images == len(list((report / "images").glob("*.png"))) == 3 * 8 + 4 * 6
    assert loaded == images
    assert done.stdout.count("<table") == 1 + 7  # the means and one per clip
    assert "Failed clips" in done.stdout and "nogt" in done.stdout
