"""`satecco upscale` as a user runs it: good and bad inputs side by side, real files only."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import NTSC, audio_packets, plain_pyav_mp4

from satecco.cli import build_parser, given_options, main
from satecco.inputs import REPORT
from satecco.options import UpscaleOptions, validate
from satecco.run_report import HTML_REPORT
from satecco.video.read import probe, read_frames


def _bad_inputs(folder):
    (folder / "notes.mp4").write_text("this is not a video\n")
    (folder / "empty.mp4").write_bytes(b"")
    whole = plain_pyav_mp4(folder / "whole.mp4", n=20, height=16, width=24).read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (folder / "whole.mp4").unlink()
    return {"notes.mp4": "not a video", "empty.mp4": "", "truncated.mp4": "", "missing.mp4": "no such file"}


def test_good_inputs_are_upscaled_bad_ones_fail_alone(tmp_path, capsys):
    good = plain_pyav_mp4(tmp_path / "good.mp4", n=8, height=16, width=24, audio=True)
    bad = _bad_inputs(tmp_path)
    out = tmp_path / "out"
    inputs = [str(tmp_path / name) for name in ["notes.mp4", "empty.mp4"]] + [str(good)] + [
        str(tmp_path / name) for name in ["truncated.mp4", "missing.mp4"]]
    code = main(["upscale", "--engine", "local", *inputs, "-o", str(out), "--steps", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1

    result = probe(out / "good.mp4")
    assert (result.width, result.height) == (96, 64)
    assert result.frame_rate == NTSC == Fraction(30000, 1001)
    assert sum(1 for _ in read_frames(out / "good.mp4")) == 8
    assert audio_packets(out / "good.mp4") == audio_packets(good)
    assert f"{out / 'good.mp4'}" in captured.out

    errors = [line for line in captured.err.splitlines() if line.startswith("satecco: error:")]
    assert len(errors) == len(bad)
    for name, cause in bad.items():
        line = next(line for line in errors if str(tmp_path / name) in line)
        assert cause in line
    assert "4 of 5 inputs failed" in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted(["good.mp4", REPORT, HTML_REPORT])  # nothing partial, nothing hidden
    report = [json.loads(line) for line in (out / REPORT).read_text().splitlines()]
    assert [(r["input"], r["status"]) for r in report] == [(i, "ok" if i == str(good) else "failed") for i in inputs]


def test_unwritable_output_folder_fails_every_input_with_its_name(tmp_path, capsys):
    good = plain_pyav_mp4(tmp_path / "good.mp4", n=6, height=16, width=16)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should go")
    code = main(["upscale", "--engine", "local", str(good), "-o", str(blocker / "out"), "--steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"satecco: error: {good}:" in err and "Not a directory" in err


def test_folder_glob_and_codecs(tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(2):
        plain_pyav_mp4(clips / f"c{i}.mp4", n=6, height=16, width=16)
    code = main(["upscale", "--engine", "local", str(clips), "-o", str(tmp_path / "ffv1"), "--codec", "ffv1", "--steps", "1",
                 "--no-progress"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "ffv1").iterdir()) == sorted(["c0.mkv", "c1.mkv", REPORT, HTML_REPORT])
    code = main(["upscale", "--engine", "local", str(clips / "c*.mp4"), "-o", str(tmp_path / "png"), "--codec", "png", "--steps", "1",
                 "--no-progress"])
    assert code == 0
    frames = sorted((tmp_path / "png" / "c1").iterdir())
    assert len(frames) == 6 and frames[0].name == "000000.png"
    assert next(read_frames(tmp_path / "png" / "c1")).shape == (64, 64, 3)


def test_tiled_run_and_configuration_errors(tmp_path, capsys):
    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=6, height=24, width=40)
    code = main(["upscale", "--engine", "local", str(clip), "-o", str(tmp_path / "out"), "--tile", "16", "--tile-overlap", "8",
                 "--steps", "1", "--no-progress"])
    assert code == 0 and probe(tmp_path / "out" / "clip.mp4").width == 160
    assert main(["upscale", "--engine", "local", str(clip), "-o", str(tmp_path / "o2"), "--weights", str(tmp_path / "none.st")]) == 2
    assert "none.st: no such weights file" in capsys.readouterr().err


def test_console_script_runs_and_same_seed_gives_same_output(tmp_path, capsys):
    """The `satecco` command in a process of its own and `main()` in this one, with one seed (lossless
    output): identical frames."""
    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=6, height=16, width=16)
    args = ["upscale", "--engine", "local", str(clip), "--codec", "ffv1", "--steps", "2", "--seed", "5"]
    done = subprocess.run([sys.executable, "-m", "satecco.cli", *args, "-o", str(tmp_path / "run0")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "run0" / "clip.mkv") in done.stdout
    assert main([*args, "-o", str(tmp_path / "run1"), "--no-progress"]) == 0
    assert str(tmp_path / "run1" / "clip.mkv") in capsys.readouterr().out
    outputs = [np.stack(list(read_frames(tmp_path / run / "clip.mkv"))) for run in ("run0", "run1")]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_config_file_sets_defaults_and_the_command_line_wins(tmp_path, capsys):
    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=6, height=16, width=16)
    config = tmp_path / "run.yaml"
    config.write_text("codec: ffv1\nsteps: 1\nno-progress: true\n")
    assert main(["upscale", "--engine", "local", str(clip), "-o", str(tmp_path / "a"), "--config", str(config)]) == 0
    assert (tmp_path / "a" / "clip.mkv").is_file()
    assert main(["upscale", "--engine", "local", str(clip), "-o", str(tmp_path / "b"), "--config", str(config), "--codec", "png"]) == 0
    assert (tmp_path / "b" / "clip").is_dir()
    config.write_text("colour: red\n")
    assert main(["upscale", "--engine", "local", str(clip), "-o", str(tmp_path / "c"), "--config", str(config)]) == 2
    assert "unknown option 'colour'" in capsys.readouterr().err


def test_options_and_config_values_are_checked_alike_before_any_work(tmp_path, capsys):
    """One mechanism checks the command line and the --config file: a bad value is one line naming the
    option and where it came from, with exit status 2 and no output folder."""
    config = tmp_path / "run.yaml"
    out = tmp_path / "out"
    cases = [("dtype: bf16\n", [], f"{config}: dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16'"),
             ("steps: -1\n", [], f"{config}: steps: Input should be greater than 0 (got -1)"),
             ("steps: 2\n", ["--steps", "0"], "--steps: Input should be greater than 0 (got '0')"),
             ("", ["--window", "4", "--window-overlap", "4"], "window_overlap 4 must be smaller than window 4"),
             ("", ["--crf", "60"], "--crf: h264 takes 0 to 51; got 60")]
    for text, flags, message in cases:
        config.write_text(text)
        assert main(["upscale", "in.mp4", "-o", str(out), "--config", str(config), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("config", sorted(Path(__file__).parent.parent.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(config):
    args = build_parser().parse_args(["-v", "upscale", "in.mp4", "-o", "out", "--config", str(config)])
    options = validate(UpscaleOptions, given_options(args), args.config)
    assert options.preset in ("tiny", "sd21") and options.steps >= 1


def test_base_model_and_weights_from_the_command_line(tiny, tmp_path):
    """A checkpoint saved with save_pretrained plus a weights file, loaded by `satecco upscale`."""
    from conftest import perturb_

    from satecco.checkpoints import save_weights

    folder = tmp_path / "base"
    tiny.unet.save_pretrained(folder / "unet")
    tiny.vae.save_pretrained(folder / "vae")
    weights = tmp_path / "satecco.safetensors"
    save_weights(weights, {"refiner": perturb_(tiny.refiner, std=0.2)})
    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=6, height=16, width=16)
    common = ["--codec", "ffv1", "--steps", "1", "--no-progress"]
    from satecco.presets import EMBEDDED_TINY

    runs = {"default": [], "shipped": ["--base-model", str(EMBEDDED_TINY), "--weights", str(EMBEDDED_TINY / "satecco.safetensors")],
            "base-only": ["--base-model", str(folder)], "trained": ["--base-model", str(folder), "--weights", str(weights)]}
    for name, options in runs.items():
        assert main(["upscale", "--engine", "local", str(clip), "-o", str(tmp_path / name), *options, *common]) == 0
    default, shipped, base_only, trained = (np.stack(list(read_frames(tmp_path / d / "clip.mkv"))).astype(int)
                                             for d in runs)
    np.testing.assert_array_equal(default, shipped)  # no files given: the embedded default
    assert np.abs(base_only - default).mean() > 1.0  # the folder's (random) base was used
    assert np.abs(trained - base_only).mean() > 1.0  # the refiner weights were used


def test_manifests_list_inputs_and_bad_manifests_are_named(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet

    from satecco.inputs import expand_inputs

    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):
        plain_pyav_mp4(clips / name, n=6, height=16, width=16)
    (tmp_path / "list.csv").write_text("path,notes\nclips/b.mp4,second\nclips/a.mp4,first\n")
    pa.parquet.write_table(pa.table({"path": [str(clips / "a.mp4"), str(clips / "missing.mp4")]}),
                           tmp_path / "list.parquet")
    assert [i.source for i in expand_inputs([str(tmp_path / "list.csv"), str(tmp_path / "list.parquet")])] == [
        str(clips / "b.mp4"), str(clips / "a.mp4"), str(clips / "missing.mp4")]
    code = main(["upscale", "--engine", "local", str(tmp_path / "list.csv"), "-o", str(tmp_path / "out"),
                 "--steps", "1", "--no-progress"])
    assert code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(["a.mp4", "b.mp4", REPORT, HTML_REPORT])
    (tmp_path / "bad.csv").write_text("file\nclips/a.mp4\n")
    assert main(["upscale", "--engine", "local", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "o")]) == 2
    assert "bad.csv: manifest has no 'path' column" in capsys.readouterr().err


def test_ray_engine_refuses_missing_model_files_before_starting_ray(tmp_path, capsys):
    import sys as _sys

    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=6, height=16, width=16)
    assert main(["upscale", str(clip), "-o", str(tmp_path / "o"), "--weights", str(tmp_path / "none.st")]) == 2
    assert main(["upscale", str(clip), "-o", str(tmp_path / "o"), "--base-model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "none.st: no such weights file" in err and "not a diffusers model folder" in err
    assert "ray" not in _sys.modules or not __import__("ray").is_initialized()


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_nothing_runs_on_random_weights_by_accident(engine, tmp_path, capsys):
    """A preset that ships no weights refuses to run without --base-model and --weights, before any
    model or cluster work, unless --random-weights says it is a benchmark."""
    from satecco.presets import ModelSpec

    clip = plain_pyav_mp4(tmp_path / "clip.mp4", n=6, height=16, width=16)
    assert main(["upscale", "--engine", engine, str(clip), "-o", str(tmp_path / "o"), "--preset", "sd21"]) == 2
    err = capsys.readouterr().err
    assert "preset 'sd21' ships no weights: give --base-model DIR and --weights FILE, or --random-weights" in err
    assert not (tmp_path / "o").exists()
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()  # refused before Ray starts
    ModelSpec(preset="sd21", random_weights=True).check_weights()
    ModelSpec(preset="sd21", method="bicubic").check_weights()  # no network, no weights needed
    with pytest.raises(ValueError, match="give --weights FILE, or --random-weights"):
        ModelSpec(preset="sd21", base_model=str(tmp_path)).check_weights()
