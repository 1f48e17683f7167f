"""`satecco upscale --dry-run`: the plan and its estimated cost, with nothing built or written."""

from __future__ import annotations

import re

import pytest
from media import archive_mkv

from satecco.cli import main
from satecco.cost import CostRow, estimate_lines, load_cost_table
from satecco.diffusion import sampling_timesteps
from satecco.presets import TINY


def test_the_dry_run_prints_the_plan_and_the_cost_and_writes_nothing(tmp_path, capsys):
    good = archive_mkv(tmp_path / "good.mkv", n=26, height=36, width=64)
    small = archive_mkv(tmp_path / "small.mkv", n=6, height=20, width=32)
    out = tmp_path / "out"
    code = main(["upscale", str(good), str(small), "-o", str(out), "--dry-run", "--height", "100"])
    printed = capsys.readouterr().out
    assert code == 1 and not out.exists()  # small.mkv's 20 lines cannot become 100
    assert "small.mkv: refused: 20 lines to 100 is x5, more than the model's x4" in printed
    assert "64x36 -> 256x144 -> 178x100 (Lanczos)" in printed
    assert f"{good}: 6 windows; 2 Ray segments of up to 3 windows" in printed
    assert "plan: videos to write 1, frames 26, megapixels out 0.5" in printed
    (row,) = [r for r in load_cost_table() if r.preset == "tiny"]
    hours = float(re.search(r"estimate: ([0-9.]+) h on " + re.escape(row.machine), printed).group(1))
    steps = len(sampling_timesteps(TINY.diffusion))  # the steps the preset runs, of its schedule's
    expected = row.seconds_per_frame * 26 * 178 * 100 / (row.width * row.height) * steps / row.steps / 3600
    assert hours == pytest.approx(expected, abs=0.006)


def test_estimates_scale_with_pixels_and_steps():
    row = CostRow("sd21", "gpu", 0.5, 1280, 720, 50, "estimate", "a guess")
    lines = estimate_lines([(3600, 1280, 720), (3600, 640, 360)], "sd21", 25, table=[row])
    assert lines[0] == "plan: videos to write 2, frames 7200, megapixels out 4147.2"
    assert lines[1].startswith("estimate: 0.31 h on gpu at 25 steps (estimate: 0.5 s per 1280x720 frame at 50 steps")
    assert estimate_lines([(1, 8, 8)], "tiny", 2, table=[row])[1] == "estimate: no row for preset 'tiny' in costs.yaml"


def test_a_malformed_cost_table_names_its_file(tmp_path):
    table = tmp_path / "costs.yaml"
    table.write_text("rows:\n  - preset: tiny\n    machine: cpu\n")
    with pytest.raises(ValueError, match=r"costs.yaml: every cost table row needs preset, machine, seconds_per_frame"):
        load_cost_table(table)
