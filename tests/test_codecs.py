"""Output codecs and encoder settings (--codec, --crf, --encoder-preset, --bitrate, --pix-fmt,
--encoder-option) and frame folders in and out (PNG, TIFF, JPEG, DPX; EXR in), with --fps."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media import NTSC, archive_mkv, moving_frames, random_frames, write

from satecco.cli import main
from satecco.errors import VideoError
from satecco.metrics.fidelity import psnr
from satecco.video.codecs import CODEC_TABLE, EncoderSettings
from satecco.video.concat import concat_segments
from satecco.video.formats import output_suffix
from satecco.video.read import probe, read_frames


def smooth_frames(n=10, height=48, width=64):
    """Gentle ramps that drift (4:2:0 keeps them well, unlike hard colour edges)."""
    y, x = np.mgrid[0:height, 0:width]
    return [np.stack([x * 2 + i * 3, y * 3 + i * 2, x + y + i * 4], axis=-1).astype(np.uint8) for i in range(n)]


def stream_of(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, stream.codec_context.format.name, stream.codec_tag, \
            [p.is_keyframe for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("codec, pix_fmt", [("hevc", "yuv420p"), ("av1", "yuv420p"), ("vp9", "yuv420p"),
                                            ("prores", "yuv422p10le")])
def test_each_video_codec_joins_its_parts_and_keeps_the_pictures(tmp_path, codec, pix_fmt):
    frames = smooth_frames(10)
    parts = [write(tmp_path / f"p{k}{output_suffix(codec)}", frames[a:b], codec)
             for k, (a, b) in enumerate([(0, 4), (4, 6), (6, 10)])]
    out = tmp_path / f"out{output_suffix(codec)}"
    assert concat_segments(parts, out, NTSC, codec) == 10
    assert probe(out).frame_rate == NTSC
    name, stored, tag, _ = stream_of(out)
    assert name in CODEC_TABLE[codec].decoders and stored == pix_fmt
    assert codec != "hevc" or tag == "hvc1"  # the tag Apple's players need
    assert np.mean([psnr(a, b) for a, b in zip(read_frames(out), frames, strict=True)]) > 32


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_ten_bit_sources_stay_ten_bit_in_hevc_and_av1(tmp_path, codec):
    ramp = (np.linspace(0, 65535, 64)[None, :, None] * np.ones((48, 1, 3))).astype(np.uint16)
    out = write(tmp_path / f"deep{output_suffix(codec)}", [ramp] * 3, codec, bits=10)
    assert stream_of(out)[1] == "yuv420p10le"
    levels = np.unique(next(read_frames(out, bits=16))[24, :, 1] >> 6)
    assert len(levels) > 60  # 64 distinct 10-bit steps survive; 8 bits would merge many of them


def test_constant_quality_bitrate_cap_preset_and_encoder_options(tmp_path):
    frames = random_frames(8, 64, 96)
    sizes = {crf: write(tmp_path / f"q{crf}.mp4", frames, "hevc", encoder=EncoderSettings(crf=crf)).stat().st_size
             for crf in (10, 40)}
    assert sizes[10] > 3 * sizes[40]
    noise = random_frames(60, 32, 48)
    free = write(tmp_path / "free.mp4", noise, "h264", encoder=EncoderSettings(crf=0))
    capped = write(tmp_path / "capped.mp4", noise, "h264", encoder=EncoderSettings(crf=10, bitrate="100k"))
    average = write(tmp_path / "abr.mp4", noise, "h264", encoder=EncoderSettings(bitrate="100k"))
    rate = {path.stem: path.stat().st_size * 8 / (len(noise) / NTSC) for path in (free, capped, average)}
    # 100 kbit/s over 2 s, with room for the container and the rate buffer's first fill
    assert rate["capped"] < 2.5e5 and rate["abr"] < 2.5e5 and rate["free"] > 2 * max(rate["capped"], rate["abr"])
    keyint = write(tmp_path / "k.mp4", frames, "h264",
                   encoder=EncoderSettings(preset="ultrafast", options=(("x264-params", "keyint=2:min-keyint=2"),)))
    assert stream_of(keyint)[3] == [True, False] * 4
    full = write(tmp_path / "444.mp4", frames, "h264", encoder=EncoderSettings(pix_fmt="yuv444p"))
    assert stream_of(full)[1] == "yuv444p"
    jpegs = {q: write(tmp_path / f"j{q}", frames[:1], "jpeg", encoder=EncoderSettings(crf=q)) for q in (2, 20)}
    assert (jpegs[2] / "000000.jpg").stat().st_size > 2 * (jpegs[20] / "000000.jpg").stat().st_size


@pytest.mark.parametrize("codec, bits, exact", [("tiff", 8, True), ("tiff", 16, True), ("dpx", 8, True),
                                                ("dpx", 16, True), ("jpeg", 8, False)])
def test_frame_folders_out_and_back_in(tmp_path, codec, bits, exact):
    frames = [f.astype(np.uint16) * 257 for f in smooth_frames(3)] if bits == 16 else smooth_frames(3)
    folder = write(tmp_path / codec, frames, codec, bits=bits)
    suffix = CODEC_TABLE[codec].suffix
    assert sorted(p.name for p in folder.iterdir()) == [f"00000{i}{suffix}" for i in range(3)]
    back = np.stack(list(read_frames(folder, bits=bits)))
    if exact:
        np.testing.assert_array_equal(back, np.stack(frames))
    else:
        assert min(psnr(a, b) for a, b in zip(back, frames, strict=True)) > 35
    assert probe(folder).codec == suffix.lstrip(".")


def test_exr_frames_are_read_as_srgb_and_mixed_folders_are_refused(tmp_path):
    folder = tmp_path / "exr"
    folder.mkdir()
    linear = np.linspace(0, 1, 16, dtype=np.float32)
    encoder = av.CodecContext.create("exr", "w")
    encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = 16, 8, "gbrpf32le", Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.broadcast_to(linear[None, :, None], (8, 16, 3)).copy(), format="gbrpf32le")
    (folder / "0001.exr").write_bytes(bytes(encoder.encode(frame)[0]))
    info = probe(folder)
    assert info.picture.bits == 16 and info.picture.colour.transfer == 13  # sRGB code values, tagged so
    row = next(read_frames(folder, bits=16))[0, :, 0] / 65535
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(row, srgb, atol=2e-3)
    write(tmp_path / "png", moving_frames(1, 8, 16), "png")
    (tmp_path / "png" / "000000.png").rename(folder / "0002.png")
    with pytest.raises(VideoError, match=r"exr.*mixes \.exr and \.png frames"):
        probe(folder)


def test_cli_frame_folder_in_at_fps_to_hevc_and_prores_keeps_audio(tmp_path, capsys):
    folder = write(tmp_path / "shots", moving_frames(5, 16, 24), "tiff")
    out = tmp_path / "out"
    common = ["upscale", "--engine", "local", "--method", "bicubic", "--no-progress", "-o", str(out)]
    assert main([*common, str(folder), "--codec", "hevc", "--fps", "23.976", "--crf", "12",
                 "--encoder-preset", "ultrafast"]) == 0
    info = probe(out / "shots.mp4")
    assert (info.frame_rate, info.width, info.height, info.codec) == (Fraction(24000, 1001), 96, 64, "hevc")
    source = archive_mkv(tmp_path / "talk.mkv", n=6, height=16, width=24)
    assert main([*common, str(source), "--codec", "prores", "--encoder-preset", "lt"]) == 0
    with av.open(str(out / "talk.mov")) as container:
        kinds = [(s.type, s.codec_context.name) for s in container.streams if s.codec_context]
        assert kinds == [("video", "prores"), ("audio", "alac"), ("audio", "alac"), ("subtitle", "mov_text")]
        assert container.streams.video[0].codec_tag == "apcs"  # ProRes LT
    assert main([*common, str(source), "--codec", "vp9"]) == 1  # .webm takes Opus and Vorbis audio only
    assert "cannot go into .webm; use --codec ffv1" in capsys.readouterr().err
    assert main([*common, str(source), "--codec", "prores", "--crf", "3"]) == 2
    assert "--crf: codec prores has no constant-quality setting" in capsys.readouterr().err
    rotated = archive_mkv(tmp_path / "turned.mkv", n=3, height=16, width=24, rotation=90)
    assert main([*common, str(rotated), "--codec", "av1"]) == 1
    assert "display matrix (rotation) cannot be kept in an av1 output" in capsys.readouterr().err
