"""Archive footage through `satecco upscale` (local engine, bicubic: what is carried does not depend
on the method): everything a file holds besides its pictures comes back, deep and HDR sources keep
their bits and tags, interlaced ones are deinterlaced; what cannot be kept is refused or noted."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from media import archive_mkv, moving_frames

from satecco.cli import main
from satecco.inputs import REPORT, VideoSettings
from satecco.preflight import prepare
from satecco.video.read import read_frames

VFR_MS = [0, 40, 80, 200, 240, 250, 260, 400, 440, 480, 600, 640]


def upscale(*args: str) -> int:
    return main(["upscale", *args, "--engine", "local", "--method", "bicubic", "--no-progress"])


def report(out) -> dict:
    return {row["input"]: row for row in map(json.loads, (out / REPORT).read_text().splitlines())}


def streams(path) -> list[tuple]:
    with av.open(str(path)) as container:
        return [(s.type, s.codec_context.name, s.metadata.get("language")) for s in container.streams
                if s.type in ("audio", "subtitle")]


def samples(path, index: int) -> np.ndarray:
    """Audio track ``index`` decoded and converted to interleaved floats (exact from 16 or 32 bits)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        to_float = av.AudioResampler(format="flt", layout=stream.codec_context.channels == 1 and "mono" or "stereo")
        return np.concatenate([g.to_ndarray().reshape(-1) for f in container.decode(stream)
                               for g in to_float.resample(f)])


def test_everything_besides_the_pictures_comes_back_in_an_mp4(tmp_path):
    source = archive_mkv(tmp_path / "reel.mkv", sar=Fraction(32, 27), rotation=90, times_ms=VFR_MS)
    out = tmp_path / "out"
    assert upscale(str(source), "-o", str(out)) == 0
    with av.open(str(out / "reel.mp4")) as container:
        video = container.streams.video[0]
        assert video.sample_aspect_ratio == Fraction(32, 27)  # displayed 16:9 wide, as the source
        frames = list(container.decode(video))
        assert [round(f.time * 1000) for f in frames] == VFR_MS  # variable timing stays variable
        assert frames[0].rotation == 90 and (frames[0].width, frames[0].height) == (192, 128)
        assert [c["metadata"]["title"] for c in container.chapters()] == ["Opening", "Street"]
        assert container.metadata["title"] == "Reel 7" and container.metadata["comment"] == "digitised 1998"
        assert [a.metadata.get("name", a.metadata.get("title")) for a in container.streams.audio] == \
            ["Main", "Commentary"]
    # PCM and FLAC cannot go into an mp4 as they are: ALAC, lossless; SubRip becomes mov_text.
    assert streams(out / "reel.mp4") == [("audio", "alac", "eng"), ("audio", "alac", "fra"),
                                         ("subtitle", "mov_text", "deu")]
    for index in (0, 1):
        np.testing.assert_array_equal(samples(out / "reel.mp4", index), samples(source, index))
    notes = report(out)[str(source)]["notes"]
    assert "audio #1 pcm_s16le (eng): transcoded to ALAC (lossless): .mp4 cannot hold pcm_s16le" in notes
    assert any(n.startswith("subtitle #3") and "mov_text" in n for n in notes)


def test_an_mkv_output_copies_every_stream_as_it_is(tmp_path):
    source = archive_mkv(tmp_path / "reel.mkv", rotation=270, times_ms=VFR_MS)
    out = tmp_path / "out"
    assert upscale(str(source), "-o", str(out), "--codec", "ffv1") == 0
    assert streams(out / "reel.mkv") == streams(source) == [("audio", "pcm_s16le", "eng"), ("audio", "flac", "fra"),
                                                            ("subtitle", "srt", "deu")]
    with av.open(str(source)) as a, av.open(str(out / "reel.mkv")) as b:
        for index in (1, 2, 3):  # packet for packet
            assert [bytes(p) for p in a.demux(a.streams[index]) if p.size] == \
                [bytes(p) for p in b.demux(b.streams[index]) if p.size]
    with av.open(str(out / "reel.mkv")) as container:
        frames = list(container.decode(video=0))
        assert [round(f.time * 1000) for f in frames] == VFR_MS and frames[0].rotation % 360 == 270
    assert report(out)[str(source)]["notes"] == []


def test_what_an_output_cannot_hold_is_refused_before_any_work(tmp_path, capsys):
    anamorphic = archive_mkv(tmp_path / "dv.mkv", sar=Fraction(10, 11))
    assert upscale(str(anamorphic), "-o", str(tmp_path / "out"), "--codec", "ffv1") == 1
    assert f"{anamorphic}: refused: its sample aspect ratio 10/11" in capsys.readouterr().err
    assert not (tmp_path / "out" / "dv.mkv").exists()
    twelve = archive_mkv(tmp_path / "master.mkv", pix_fmt="yuv444p12le", codec="ffv1")
    assert upscale(str(twelve), "-o", str(tmp_path / "out")) == 1
    assert "its 12-bit samples would be cut to 10 bits by h264" in capsys.readouterr().err
    assert upscale(str(twelve), "-o", str(tmp_path / "out"), "--allow-8bit") == 0
    with av.open(str(tmp_path / "out" / "master.mp4")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    assert "12-bit samples written at 10 bits (--allow-8bit)" in report(tmp_path / "out")[str(twelve)]["notes"]


@pytest.mark.parametrize("codec, pix_fmt", [("h264", "yuv420p10le"), ("ffv1", "gbrp10le"), ("png", "rgb48be")])
def test_deep_hdr_sources_keep_their_bits_and_tags(tmp_path, codec, pix_fmt):
    source = archive_mkv(tmp_path / "hdr.mkv", pix_fmt="yuv420p10le", colour=(9, 16, 9, 1))
    out = tmp_path / "out"
    assert upscale(str(source), "-o", str(out), "--codec", codec) == 0
    target = out / ("hdr" + {"h264": ".mp4", "ffv1": ".mkv", "png": ""}[codec])
    first = target / "000000.png" if codec == "png" else target
    with av.open(str(first)) as container:
        frame = next(container.decode(video=0))
    assert frame.format.name == pix_fmt
    if codec != "png":  # BT.2020 primaries, PQ transfer (and, in YUV, the BT.2020 matrix, limited range)
        assert (frame.color_primaries, frame.color_trc) == (9, 16)
    if codec == "h264":
        assert (frame.colorspace, frame.color_range) == (9, 1)
    pixels = np.stack(list(read_frames(target, bits=16)))
    assert pixels.dtype == np.uint16 and np.any(pixels % 257)  # more than 8 bits of detail
    assert "HDR (PQ) tags kept" in " ".join(report(out)[str(source)]["notes"])


def combed(n=8, height=32, width=48):
    """Fields from two moments: even rows of one picture, odd rows of a shifted one (what an interlaced
    camera records of motion)."""
    frames = []
    for early, late in zip(moving_frames(n, height, width), moving_frames(n + 6, height, width)[6:], strict=True):
        picture = early.copy()
        picture[1::2] = np.roll(late, 6, axis=1)[1::2]
        frames.append(picture)
    return frames


def comb(frames: np.ndarray) -> float:
    """Mean distance of each inner row from the mean of its neighbours: high where fields disagree."""
    rows = frames.astype(float)
    return float(np.abs(rows[:, 1:-1] - (rows[:, :-2] + rows[:, 2:]) / 2).mean())


def test_interlaced_sources_are_deinterlaced_and_range_reads_agree(tmp_path):
    source = archive_mkv(tmp_path / "tv.mkv", n=8, interlaced=True, frames=combed())
    auto = prepare(source, VideoSettings())
    assert auto.deinterlace and "deinterlaced (bwdif, one frame per frame)" in auto.notes
    off = prepare(source, VideoSettings(deinterlace="off"))
    assert not off.deinterlace and any("combing is upscaled too" in note for note in off.notes)
    raw = np.stack(list(read_frames(source)))
    clean = np.stack(list(read_frames(source, deinterlace=True)))
    assert clean.shape == raw.shape and comb(clean) < 0.6 * comb(raw)
    for start, stop in ((0, 3), (2, 6), (5, 8)):  # bwdif reads a frame's neighbours: ranges decode them too
        np.testing.assert_array_equal(np.stack(list(read_frames(source, start, stop, deinterlace=True))),
                                      clean[start:stop])
    progressive = archive_mkv(tmp_path / "film.mkv", n=4)
    assert not prepare(progressive, VideoSettings()).deinterlace
    assert prepare(progressive, VideoSettings(deinterlace="on")).deinterlace
