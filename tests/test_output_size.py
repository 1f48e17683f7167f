"""Output size: --outscale, --height and --max-height scale the x4 output with Lanczos, keeping the aspect."""

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
from satecco.preflight import output_size
from satecco.video.read import read_frames


@pytest.mark.parametrize("options, codec, expected", [
    ({}, "h264", None),  # the model's own x4
    ({"outscale": 4.0}, "h264", None),
    ({"outscale": 2.0}, "h264", (320, 180)),
    ({"outscale": 1.5}, "h264", (240, 136)),  # 135 lines rounded to even for 4:2:0
    ({"outscale": 1.5}, "ffv1", (240, 135)),
    ({"height": 270}, "h264", (480, 270)),
    ({"height": 135}, "h264", (240, 135)),  # the height asked for is kept, odd or not
    ({"max_height": 200}, "h264", (356, 200)),  # x4 would give 360 lines
    ({"max_height": 1080}, "h264", None),
    ({"outscale": 3.0, "max_height": 180}, "ffv1", (320, 180)),
])
def test_output_size(options, codec, expected):
    assert output_size(160, 90, VideoSettings(codec=codec, **options)) == expected


def test_sizes_beyond_the_model_or_contradicting_each_other_are_refused():
    with pytest.raises(ValueError, match=r"90 lines to 720 is x8, more than the model's x4"):
        output_size(160, 90, VideoSettings(height=720))
    with pytest.raises(ValueError, match="--outscale or --height, not both"):
        VideoSettings(outscale=2.0, height=180)


def test_outscale_writes_the_lanczos_scaled_x4_output_and_keeps_the_rest(tmp_path, capsys):
    source = archive_mkv(tmp_path / "reel.mkv", n=6, height=36, width=64, sar=Fraction(4, 3))
    out = tmp_path / "out"
    assert main(["upscale", str(source), "-o", str(out), "--engine", "local", "--method", "bicubic", "--no-progress",
                 "--outscale", "2.5", "--crf", "0"]) == 0
    with av.open(str(out / "reel.mp4")) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (160, 90) and video.sample_aspect_ratio == Fraction(4, 3)
        assert len(container.streams.audio) == 2 and len(container.streams.subtitles) == 1
    frames = np.stack(list(read_frames(out / "reel.mp4")))
    assert frames.shape == (6, 90, 160, 3)
    # bicubic x4, then Lanczos to 160x90: close to one resize of the source to that size
    direct = np.stack([imresize(frame, output_shape=(90, 160)) for frame in read_frames(source)])
    assert min(psnr(a, b) for a, b in zip(frames, direct, strict=True)) > 30
    assert main(["probe", str(source), "-o", str(tmp_path / "probed"), "--outscale", "2.5"]) == 0
    assert "64x36 -> 256x144 -> 160x90 (Lanczos)" in capsys.readouterr().out
    assert main(["upscale", str(source), "-o", str(tmp_path / "big"), "--engine", "local", "--method", "bicubic",
                 "--no-progress", "--height", "200"]) == 1
    assert "reel.mkv: refused: 36 lines to 200 is x5.56, more than the model's x4" in capsys.readouterr().err
