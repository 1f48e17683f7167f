"""`satecco probe`: what upscale would keep, lose or refuse, per input, from real files."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from media import archive_mkv, plain_pyav_mp4

from satecco.cli import main


def ten_bit_with_two_audio_tracks(path):
    """FFV1 yuv420p10le, 4 frames, two PCM tracks (eng, fra)."""
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 32, 16, "yuv420p10le"
        tracks = [out.add_stream("pcm_s16le", rate=8000) for _ in range(2)]
        for track, language in zip(tracks, ("eng", "fra"), strict=True):
            track.metadata["language"] = language
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), 40 * i, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p10le")
            frame.pts = i
            out.mux(video.encode(frame))
        for track in tracks:
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 1280), np.int16), format="s16", layout="mono")
            sound.sample_rate, sound.pts = 8000, 0
            out.mux(track.encode(sound))
            out.mux(track.encode(None))
        out.mux(video.encode(None))
    return path


def test_probe_tells_what_each_input_keeps_loses_or_is_refused(tmp_path, capsys):
    deep = ten_bit_with_two_audio_tracks(tmp_path / "deep.mkv")
    plain = plain_pyav_mp4(tmp_path / "plain.mp4", n=6, height=16, width=16, audio=True)
    out = tmp_path / "out"
    assert main(["probe", str(deep), str(plain), "-o", str(out), "--codec", "ffv1"]) == 0
    text = capsys.readouterr().out
    assert f"  output: {out / 'deep.mkv'}" in text and f"  output: {out / 'plain.mkv'}" in text
    assert "ffv1 yuv420p10le (10-bit -> 10-bit) 32x16 -> 128x64, 4 frames at 25 fps" in text
    assert "  audio #1 pcm_s16le (eng): copied" in text and "  audio #2 pcm_s16le (fra): copied" in text
    assert "h264 yuv420p (8-bit -> 8-bit) 16x16 -> 64x64, 6 frames at 30000/1001 fps" in text
    assert "note:" not in text  # nothing is transcoded, dropped or changed
    assert not out.exists()  # probing writes nothing
    assert main(["probe", str(deep), "-o", str(out)]) == 0  # into an mp4: PCM becomes ALAC, said so
    assert "  audio #2 pcm_s16le (fra): transcoded to ALAC (lossless): .mp4 cannot hold pcm_s16le" in \
        capsys.readouterr().out
    assert main(["probe", str(plain), str(tmp_path / "gone.mp4"), "-o", str(tmp_path), "--codec", "ffv1"]) == 1
    assert f"  error: {tmp_path / 'gone.mp4'}: no such file" in capsys.readouterr().out
    assert main(["probe", str(plain), "-o", str(tmp_path)]) == 1
    assert f"  {plain}: refused: its output {plain} would overwrite the input" in capsys.readouterr().out
    config = tmp_path / "run.yaml"
    config.write_text("codec: ffv1\nsuffix: _x4\n")  # probe reads the options upscale would
    assert main(["probe", str(plain), "-o", str(tmp_path), "--config", str(config)]) == 0
    assert f"  output: {tmp_path / 'plain_x4.mkv'}" in capsys.readouterr().out


def test_probe_tells_aspect_timing_rotation_hdr_and_interlacing(tmp_path, capsys):
    anamorphic = archive_mkv(tmp_path / "dv.mkv", sar=Fraction(32, 27), rotation=90,
                             times_ms=[0, 40, 80, 200, 240, 250, 260, 400, 440, 480, 600, 640])
    hdr = archive_mkv(tmp_path / "hdr.mkv", pix_fmt="yuv420p10le", colour=(9, 16, 9, 1))
    tv = archive_mkv(tmp_path / "tv.mkv", n=4, interlaced=True)
    out = tmp_path / "out"
    assert main(["probe", str(anamorphic), str(hdr), str(tv), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "time base 1/1000, variable timing (frame gaps 10.0-140.0 ms, kept), SAR 32/27, rotation kept" in text
    assert "(10-bit -> 10-bit)" in text and "colour primaries/transfer/matrix/range 9/16/9/1" in text
    assert "  note: HDR (PQ) tags kept; the model sees the PQ code values as they are" in text
    assert "field order top first, deinterlaced" in text and "  note: deinterlaced (bwdif" in text
    assert main(["probe", str(anamorphic), str(tv), "-o", str(out), "--codec", "ffv1", "--deinterlace", "off"]) == 1
    text = capsys.readouterr().out
    assert f"  error: {anamorphic}: refused: its sample aspect ratio 32/27 (non-square pixels)" in text
    assert "  note: interlaced, left as it is (--deinterlace off): combing is upscaled too" in text
