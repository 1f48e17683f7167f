"""`satecco evaluate` as a user runs it: REDS4-style frame folders and videos, known answers, bad clips
failing alone, archives without ground truth, the Ray engine, MLflow, and the report rendered by a real
headless Chromium."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from media import moving_frames, textured_frames, write

from satecco.cli import main
from satecco.evaluate import EvalSettings, evaluate_locally, list_clips, pair_clips
from satecco.metrics.fidelity import psnr
from satecco.metrics.temporal import warping_error
from satecco.report import choose_region

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


def steady_frames(n: int = 4) -> list[np.ndarray]:
    """A texture drifting 1.5 px a frame, 96x192 (NIQE needs two 96x96 blocks), kept within [0, 247]."""
    return [(f[:96].astype(int) * 247 // 255).astype(np.uint8) for f in textured_frames(n, 192)]


def flicker_frames(n: int = 4) -> list[np.ndarray]:
    """:func:`steady_frames` with every other frame 8 levels brighter: flicker that no motion explains."""
    return [f + 8 * (t % 2) for t, f in enumerate(steady_frames(n))]


@pytest.fixture
def archive(tmp_path):
    """Two methods' outputs and no ground truth: ``a/steady`` (PNG frames), ``a/flicker.mkv`` (lossless
    video) and ``b/``, the same two clips mirrored left to right."""
    for method, flip in (("a", lambda f: f), ("b", np.fliplr)):
        png_folder(tmp_path / method / "steady", [flip(f) for f in steady_frames()])
        write(tmp_path / method / "flicker.mkv", [np.ascontiguousarray(flip(f)) for f in flicker_frames()], "ffv1")
    return tmp_path / "a", tmp_path / "b"


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


def test_evaluate_without_gt(archive, tmp_path):
    """No --gt: each clip alone, the no-reference metrics only, the warping error on the clip's own flow."""
    a, b = archive
    report = tmp_path / "report"
    assert main(["evaluate", "--engine", "local", "--pred", f"a={a}", "--pred", f"b={b}", "-o", str(report)]) == 0
    summary = json.loads((report / "metrics.json").read_text())
    assert summary["gt"] is None and summary["metrics"] == ["niqe", "clipiqa", "warping_error"]
    assert "no ground truth" in summary["conventions"]["reference"]
    assert "own Farneback flow" in summary["conventions"]["temporal"] and "psnr_ssim" not in summary["conventions"]
    assert "no CLIP model folder" in summary["unavailable"]["clipiqa"]
    for entry in summary["methods"].values():  # no full-reference number anywhere
        assert set(entry["mean"]) == {"niqe", "warping_error"} and not entry["failed"]
        assert all(set(c["metrics"]) == {"niqe", "warping_error"} and c["gt"] is None for c in entry["clips"].values())
    clips = summary["methods"]["a"]["clips"]
    steady, flicker = clips["steady"]["metrics"], clips["flicker"]["metrics"]
    assert steady["warping_error"] == pytest.approx(warping_error(np.stack(steady_frames())), rel=1e-12)
    assert flicker["warping_error"] > 3 * steady["warping_error"]  # measured: 1.2e-3 against 1.8e-4
    assert len(clips["flicker"]["per_frame"]["warping_error"]) == 3 and len(clips["flicker"]["per_frame"]["niqe"]) == 4
    # the report: every method's crops and profiles, plots of the no-reference metrics, no ground-truth column
    page = (report / "index.html").read_text()
    assert "no ground truth" in page and "ground truth</figcaption>" not in page
    kinds = ("crop-m-a", "crop-m-b", "xt-m-a", "xt-m-b", "plot-niqe", "plot-warping_error")
    written = sorted(p.name for p in (report / "images").glob("*.png"))
    assert written == sorted(f"{clip}-{kind}.png" for clip in ("flicker", "steady") for kind in kinds)
    assert sorted(re.findall(r"src='images/([^']+)'", page)) == written


def test_without_gt_methods_share_the_first_ones_region(archive):
    a, b = archive
    pairs = pair_clips({"a": str(a), "b": str(b)}, None)
    anchors = {"flicker": str(a / "flicker.mkv"), "steady": str(a / "steady")}
    assert [(p.method, p.clip, p.gt, p.anchor) for p in pairs] == [
        (m, c, None, anchors[c]) for m in ("a", "b") for c in ("flicker", "steady")]
    # single clips count as one clip, named after the first
    assert [(p.clip, p.anchor) for p in pair_clips({"x": str(a / "steady"), "y": str(b / "flicker.mkv")}, None)] \
        == [("steady", str(a / "steady"))] * 2
    ra, rb = evaluate_locally(pairs[1::2], EvalSettings(metrics=("niqe",), reference=False))  # the steady clips
    mirrored = [np.fliplr(f) for f in steady_frames()]
    assert choose_region(mirrored[0]) != choose_region(steady_frames()[0])  # b alone would show another place
    assert ra.region == rb.region == choose_region(steady_frames()[0])
    y, x, size = rb.region
    np.testing.assert_array_equal(rb.crop, mirrored[2][y:y + size, x:x + size])
    assert rb.gt is None and rb.gt_crop is None and rb.gt_profile is None
    # a no-reference metric does not depend on whether ground truth was given
    (with_gt,) = evaluate_locally(pair_clips({"a": str(a / "steady")}, str(b / "steady")),
                                  EvalSettings(metrics=("niqe",)))
    assert with_gt.values == ra.values and with_gt.per_frame == ra.per_frame


def test_full_reference_metrics_need_gt(archive, tmp_path, capsys):
    a, _ = archive
    code = main(["evaluate", "--engine", "local", "--pred", str(a), "-o", str(tmp_path / "report"),
                 "--metrics", "psnr", "niqe", "tlpips"])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "report").exists()
    assert err.count("\n") == 1 and "['psnr', 'tlpips']" in err and "--gt" in err


def test_evaluate_logs_to_mlflow(dataset, tmp_path, monkeypatch):
    import mlflow

    gt, pred = dataset
    monkeypatch.chdir(tmp_path)  # the sqlite store keeps artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    code = main(["evaluate", "--engine", "local", "--pred", f"mine={pred / 'offset4'}", "--gt",
                 str(gt / "offset4"), "-o", str(tmp_path / "report"), "--metrics", "psnr", "ssim"])
    assert code == 0
    assert main(["evaluate", "--engine", "local", "--pred", f"mine={pred / 'offset4'}", "-o",
                 str(tmp_path / "report-nogt")]) == 0
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("satecco-evaluate").experiment_id])
    run, alone = sorted(runs, key=lambda r: r.data.params["gt"] == "none")
    assert "no ground truth" in alone.data.params["reference"]
    assert set(alone.data.metrics) == {"mine.warping_error", "mine.offset4.warping_error"}  # niqe: frames too small
    assert alone.data.metrics["mine.warping_error"] == pytest.approx(warping_error(np.stack(frames(4, offset=4))))
    assert run.data.params["pred.mine"] == str(pred / "offset4") and run.data.params["crop_border"] == "0"
    assert run.data.metrics["mine.psnr"] == pytest.approx(20 * math.log10(255 / 4))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "index.html", "images"} <= artifacts


def test_ray_engine_equals_local_engine(dataset, archive, tmp_path, ray_local):
    from satecco.pipelines.evaluate import evaluate_on_ray

    gt, pred = dataset
    a, b = archive
    cases = [(pair_clips({"mine": str(pred)}, str(gt)), EvalSettings(metrics=("psnr", "ssim", "tof"))),
             (pair_clips({"a": str(a), "b": str(b)}, None), EvalSettings(reference=False))]
    for pairs, settings in cases:
        remote = evaluate_on_ray(pairs, settings, actors=2, num_cpus=0.5)
        local = evaluate_locally(pairs, settings)
        assert [(r.method, r.clip) for r in remote] == [(p.method, p.clip) for p in pairs]
        for x, y in zip(remote, local, strict=True):
            assert (x.error, x.values, x.per_frame, x.unavailable) == (y.error, y.values, y.per_frame, y.unavailable)
            if not x.error:
                assert x.region == y.region
                np.testing.assert_array_equal(x.profile, y.profile)
    assert remote[0].gt is None and remote[0].gt_crop is None and set(remote[0].values) == {"niqe", "warping_error"}


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render(report: Path) -> tuple[str, int, int]:
    """``report/index.html`` as a real headless Chromium renders it: (DOM, images, images loaded)."""
    page = (report / "index.html").read_text()
    probe = ("<script>addEventListener('load', () => { const i = [...document.images];"
             " document.body.dataset.images = i.length;"
             " document.body.dataset.loaded = i.filter(x => x.complete && x.naturalWidth > 0).length; });</script>")
    (report / "check.html").write_text(page.replace("</body>", probe + "</body>"))
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", (report / "check.html").as_uri()], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout).group(0)
    return (done.stdout, int(re.search(r'data-images="(\d+)"', body).group(1)),
            int(re.search(r'data-loaded="(\d+)"', body).group(1)))


needs_chromium = pytest.mark.skipif(chromium() is None,
                                    reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does)")


@needs_chromium
def test_report_renders_in_headless_chromium(dataset, tmp_path):
    """Every image of index.html loads in a real browser and the tables are there."""
    gt, pred = dataset
    report = tmp_path / "report"
    main(["evaluate", "--engine", "local", "--pred", f"satecco={pred}", "--pred", f"copy={gt}", "--gt", str(gt),
          "-o", str(report), "--metrics", "psnr", "tof"])
    dom, images, loaded = render(report)
    # 3 clips of both methods x (3 crops + 3 profiles + 2 plots) + 4 clips of `copy` only x (2 + 2 + 2)
    assert images == len(list((report / "images").glob("*.png"))) == 3 * 8 + 4 * 6
    assert loaded == images
    assert dom.count("<table") == 1 + 7  # the means and one per clip
    assert "Failed clips" in dom and "nogt" in dom


@needs_chromium
def test_report_without_gt_renders_in_headless_chromium(archive, tmp_path):
    a, b = archive
    report = tmp_path / "report"
    main(["evaluate", "--engine", "local", "--pred", f"a={a}", "--pred", f"b={b}", "-o", str(report),
          "--metrics", "warping_error"])
    dom, images, loaded = render(report)
    assert images == loaded == 2 * (2 + 2 + 1)  # 2 clips x (a crop and a profile per method, 1 plot)
    assert dom.count("<table") == 1 + 2 and "no ground truth" in dom
