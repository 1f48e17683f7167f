"""Archive footage through `satecco upscale` (local engine, bicubic: what is carried does not depend
on the method): everything a file holds besides its pictures comes back, deep and HDR sources keep
their bits and tags, interlaced ones are deinterlaced; what cannot be kept is refused or noted."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from media import archive_mkv, moving_frames, plain_pyav_mp4

from satecco.cli import main
from satecco.inputs import REPORT, VideoSettings
from satecco.preflight import prepare
from satecco.run_report import HTML_REPORT
from satecco.video.read import read_frames
from satecco.video.streams import plan_streams

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


def no_frames(path):
    """A Matroska file with a video stream and no frame in it."""
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 16, 16, "bgr0"
        out.start_encoding()  # the header, and nothing after it
    return path


def test_odd_inputs_each_get_a_clear_answer(tmp_path, capsys):
    """Zero and one frame, tiny odd sizes, 4:4:4, grey, a unicode path, an unknown suffix, and a manifest
    entry that points outside its folder, through the real tiny model (one step)."""
    frames = moving_frames(3, 16, 16)
    made = {
        "zero.mkv": no_frames(tmp_path / "zero.mkv"),
        "one.mkv": archive_mkv(tmp_path / "one.mkv", n=1, height=8, width=8, codec="ffv1", pix_fmt="bgr0"),
        "tiny.mkv": archive_mkv(tmp_path / "tiny.mkv", n=2, height=3, width=5, codec="ffv1", pix_fmt="bgr0"),
        "chroma.mkv": archive_mkv(tmp_path / "chroma.mkv", n=3, height=16, width=16, pix_fmt="yuv444p",
                                  frames=frames),
        "grey.mkv": archive_mkv(tmp_path / "grey.mkv", n=3, height=16, width=16, codec="ffv1", pix_fmt="gray"),
        "café 東京.mkv": archive_mkv(tmp_path / "café 東京.mkv", n=2, height=8, width=8),
        "reel.data": archive_mkv(tmp_path / "reel.data", n=2, height=8, width=8),
        "silent.mp4": plain_pyav_mp4(tmp_path / "silent.mp4", n=2, height=8, width=8),
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest_folder = tmp_path / "lists"
    manifest_folder.mkdir()
    archive_mkv(elsewhere / "far.mkv", n=2, height=8, width=8)
    (manifest_folder / "list.csv").write_text("path\n../elsewhere/far.mkv\n")
    out = tmp_path / "out"
    code = main(["upscale", *map(str, made.values()), str(manifest_folder / "list.csv"), "-o", str(out),
                 "--engine", "local", "--steps", "1", "--no-progress"])
    assert code == 1
    assert f"{made['zero.mkv']}: not a video file: End of file" in capsys.readouterr().err
    rows = report(out)
    assert [rows[str(p)]["status"] for p in made.values()] == ["failed"] + ["ok"] * 7
    for name, frames_in, size in [("one", 1, (32, 32)), ("tiny", 2, (20, 12)), ("chroma", 3, (64, 64)),
                                  ("grey", 3, (64, 64)), ("café 東京", 2, (32, 32)), ("reel", 2, (32, 32)),
                                  ("far", 2, (32, 32)), ("silent", 2, (32, 32))]:
        written = np.stack(list(read_frames(out / f"{name}.mp4")))
        assert written.shape == (frames_in, size[1], size[0], 3), name
    grey = np.stack(list(read_frames(out / "grey.mp4"))).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 3  # grey stays grey (within 4:2:0 rounding)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["one.mp4", "tiny.mp4", "chroma.mp4", "grey.mp4", "café 東京.mp4", "reel.mp4", "far.mp4", "silent.mp4",
         REPORT, HTML_REPORT])
    assert streams(out / "silent.mp4") == [] and len(streams(out / "reel.mp4")) == 3


def test_streams_no_output_form_keeps_are_refused_and_data_is_dropped_with_a_note(tmp_path):
    path = tmp_path / "disc.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 16, 16, "bgr0"
        out.add_mux_stream("dvd_subtitle").metadata["language"] = "spa"
        out.add_attachment("font.ttf", "font/ttf", b"not really a font")
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        out.mux(video.encode(frame))
        out.mux(video.encode(None))
    with av.open(str(path)) as container:
        with pytest.raises(ValueError, match=r"subtitle #1 \(dvdsub\) cannot go into .mp4; use --codec ffv1"):
            plan_streams(container, "h264")
        kept = plan_streams(container, "ffv1")
        assert [(p.kind, p.action) for p in kept][0] == ("subtitle", "copy")
        assert all(p.action == "drop" and "frame folder holds pictures only" in p.why for p in plan_streams(container, "png"))
