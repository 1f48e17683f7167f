"""Previews: --frames A:B and --preview SECONDS upscale part of each input (its other streams and
chapters cut to match); --compare writes bicubic | output side by side, labelled."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media import archive_mkv

from satecco.cli import main
from satecco.inputs import VideoSettings
from satecco.metrics.fidelity import psnr
from satecco.metrics.imresize import imresize
from satecco.preflight import excerpt
from satecco.video.read import probe, read_frames

BICUBIC = ["--method", "bicubic", "--no-progress", "--codec", "ffv1"]


@pytest.mark.parametrize("frames, preview, expected", [
    ((4, 10), None, (4, 10)),
    ((4, None), None, (4, 12)),
    ((0, 99), None, (0, 12)),
    (None, 0.2, (3, 8)),  # 5 frames at 25 fps, from the middle
    (None, 60.0, (0, 12)),
    (None, None, None),
])
def test_excerpt(frames, preview, expected):
    assert excerpt(12, Fraction(25), VideoSettings(frames=frames, preview=preview)) == expected


def test_bad_ranges_are_refused(tmp_path, capsys):
    source = archive_mkv(tmp_path / "reel.mkv", n=4, height=16, width=24)
    common = ["upscale", str(source), "-o", str(tmp_path / "out"), "--engine", "local", *BICUBIC]
    assert main([*common, "--frames", "5:2"]) == 2
    assert "--frames: 5:2 holds no frame" in capsys.readouterr().err
    assert main([*common, "--frames", "1:2", "--preview", "1"]) == 2
    assert "give --frames or --preview, not both" in capsys.readouterr().err
    assert main([*common, "--frames", "9:"]) == 1
    assert "reel.mkv: refused: --frames starts at frame 9, but it has 4 frames" in capsys.readouterr().err


def carried(path) -> dict:
    """What the output carries besides its pictures: audio seconds per track, subtitle cue times, chapters."""
    with av.open(str(path)) as container:
        audio = []
        for stream in container.streams.audio:
            container.seek(0)
            audio.append(Fraction(sum(f.samples for f in container.decode(stream)), stream.sample_rate))
        container.seek(0)
        cues = [(p.pts * p.time_base, bytes(p).decode()) for p in container.demux(container.streams.subtitles[0])
                if p.size]
        chapters = [(c["start"] * c["time_base"], c["end"] * c["time_base"], c["metadata"]["title"])
                    for c in container.chapters()]
        start = container.streams.video[0].start_time * container.streams.video[0].time_base
    return {"audio": audio, "cues": cues, "chapters": chapters, "video_start": start}


def test_frames_cut_pictures_sound_subtitles_and_chapters_alike(tmp_path):
    """The local engine; the Ray engine reads the same frames (tests/test_ray_pipeline.py runs --frames
    through it) and joins its parts with the same excerpt."""
    source = archive_mkv(tmp_path / "reel.mkv", n=12, height=16, width=24)  # 25 fps; cues at frames 1 and 6
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(["upscale", str(source), "-o", str(whole), "--engine", "local", *BICUBIC]) == 0
    assert main(["upscale", str(source), "-o", str(part), "--engine", "local", *BICUBIC, "--frames", "4:10",
                 "--compare"]) == 0
    frames = np.stack(list(read_frames(part / "reel.mkv")))
    np.testing.assert_array_equal(frames, np.stack(list(read_frames(whole / "reel.mkv")))[4:10])
    assert probe(part / "reel.mkv").frame_rate == 25
    kept = carried(part / "reel.mkv")
    assert kept["video_start"] == 0
    # Packets are kept whole: the PCM track's are 20 ms, so its cut is exact; FLAC's are 2304 samples long
    assert kept["audio"][0] == Fraction(6, 25) <= kept["audio"][1] < Fraction(6, 25) + Fraction(2304, 8000)
    # frame 1's cue lasts 200 ms, so it is still shown at frame 4: kept from 0; frame 6 is the excerpt's frame 2
    assert kept["cues"] == [(0, "Line 1"), (Fraction(2, 25), "Line 6")]
    assert kept["chapters"] == [(0, Fraction(2, 25), "Opening"), (Fraction(2, 25), Fraction(6, 25), "Street")]
    compare = np.stack(list(read_frames(part / "reel-compare.mp4")))
    assert compare.shape == (6, 64 + 20, 2 * 96, 3)
    assert compare[:, :20].max() > 200 and compare[:, :20].mean() < 60  # white letters on a black strip
    lows = list(read_frames(source))[4:10]
    left = [imresize(low, output_shape=(64, 96)) for low in lows]
    assert min(psnr(a, b) for a, b in zip(compare[:, 20:, :96], left, strict=True)) > 35
    assert min(psnr(a, b) for a, b in zip(compare[:, 20:, 96:], frames, strict=True)) > 35


def test_preview_takes_seconds_from_the_middle(tmp_path, capsys):
    source = archive_mkv(tmp_path / "reel.mkv", n=12, height=16, width=24)
    out = tmp_path / "out"
    assert main(["upscale", str(source), "-o", str(out), "--engine", "local", *BICUBIC, "--preview", "0.2"]) == 0
    np.testing.assert_array_equal(np.stack(list(read_frames(out / "reel.mkv"))),
                                  np.stack([imresize(f, 4) for f in read_frames(source)])[3:8])
    assert main(["probe", str(source), "-o", str(tmp_path / "p"), "--preview", "0.2"]) == 0
    assert "frames 3 to 7 of 12 (--frames or --preview)" in capsys.readouterr().out
