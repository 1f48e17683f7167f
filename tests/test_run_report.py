"""OUTDIR/satecco-report.html: stills, figures and errors per video, checked in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from media import moving_frames, write

from satecco.cli import main
from satecco.inputs import VideoResult
from satecco.run_report import HTML_REPORT, busy_chart, still


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_still_shows_one_region_of_input_and_output(tmp_path):
    frames = moving_frames(5, 60, 80)
    source = write(tmp_path / "in.mkv", frames, "ffv1")
    big = [np.repeat(np.repeat(f, 4, axis=0), 4, axis=1) for f in frames]  # a x4 "output" by pixel repetition
    output = write(tmp_path / "out.mkv", big, "ffv1")
    before, after = still(str(source), str(output), 5)
    assert before.shape == after.shape == (192, 192, 3)  # a 48-pixel input region, x4
    np.testing.assert_array_equal(before, after)  # the same region of the middle frame
    np.testing.assert_array_equal(before[::4, ::4], frames[2][6:54, 16:64])


def test_busy_chart_scales_bars_to_the_busiest_stage():
    chart = busy_chart({"decode": 1.0, "denoise": 4.0})
    assert 'width:75px' in chart and 'width:300px' in chart and "denoise: 4.0 s" in chart


@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does)")
def test_run_report_renders_in_headless_chromium(tmp_path):
    good = write(tmp_path / "good.mkv", moving_frames(4, 24, 32), "ffv1")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    out = tmp_path / "out"
    assert main(["upscale", str(good), str(bad), "-o", str(out), "--engine", "local", "--method", "bicubic",
                 "--no-progress"]) == 1
    page = (out / HTML_REPORT).read_text()
    assert "2 inputs: 1 ok, 0 skipped, 1 failed; 4 frames written" in page
    probe = ("<script>addEventListener('load', () => { const i = [...document.images];"
             " document.body.dataset.images = i.length;"
             " document.body.dataset.loaded = i.filter(x => x.complete && x.naturalWidth > 0).length; });</script>")
    (tmp_path / "check.html").write_text(page.replace("</body>", probe + "</body>"))
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", (tmp_path / "check.html").as_uri()], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout).group(0)
    assert re.search(r'data-images="2"', body) and re.search(r'data-loaded="2"', body)  # the good video's still
    assert done.stdout.count("<tr>") == 3 and 'class="failed"' in done.stdout and "bad.mp4" in done.stdout


def test_a_still_that_cannot_be_made_does_not_fail_the_report(tmp_path):
    from satecco.run_report import write_run_report

    result = VideoResult(str(tmp_path / "gone.mkv"), str(tmp_path / "gone_x4.mkv"), "ok", frames=3, seconds=1.0)
    page = (tmp_path / HTML_REPORT)
    write_run_report(tmp_path, [result], {"decode": 0.5})
    assert "no still:" in page.read_text() and "decode: 0.5 s" in page.read_text()
