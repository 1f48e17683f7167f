"""satecco.video_io on real files written with PyAV into tmp_path (no mocks)."""

import inspect
import pickle
from fractions import Fraction

import av
import numpy as np
import pytest
from media import NTSC, audio_packets, moving_frames, plain_pyav_mp4, random_frames, write

from satecco.errors import VideoError
from satecco.video_io import (
    VideoWriter,
    concat_segments,
    count_frames,
    output_suffix,
    probe,
    read_frames,
)


def test_ffv1_round_trip_is_bit_exact(tmp_path):
    frames = random_frames(n=10, height=61, width=97)  # odd sizes: no chroma subsampling in bgr0
    path = write(tmp_path / "clip.mkv", frames, "ffv1")
    info = probe(path)
    assert (info.width, info.height, info.codec, info.has_audio) == (97, 61, "ffv1", False)
    decoded = list(read_frames(path))
    assert len(decoded) == 10
    for got, want in zip(decoded, frames, strict=True):
        assert got.dtype == np.uint8 and got.shape == (61, 97, 3)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("codec", "height", "width"), [("h264", 48, 64), ("h264", 61, 97), ("ffv1", 48, 64)])
def test_frame_rate_and_count_are_exact(tmp_path, codec, height, width):
    path = write(tmp_path / f"clip{output_suffix(codec)}", random_frames(13, height, width), codec)
    info = probe(path)
    assert info.frame_rate == Fraction(30000, 1001) and isinstance(info.frame_rate, Fraction)
    assert (info.width, info.height) == (width, height)
    decoded = list(read_frames(path))
    assert len(decoded) == 13 and decoded[0].shape == (height, width, 3)
    if codec == "h264":
        assert info.num_frames == 13


def test_h264_keeps_flat_colours(tmp_path):
    # Tagged BT.709 on write and honoured on read: a flat colour survives within rounding.
    frame = np.empty((48, 64, 3), np.uint8)
    frame[:] = (200, 30, 90)
    decoded = list(read_frames(write(tmp_path / "flat.mp4", [frame] * 3, "h264")))
    assert np.abs(decoded[1].astype(int) - frame).max() <= 2


def test_full_range_video_keeps_its_range(tmp_path):
    # Phone cameras write full-range ("JPEG") YUV; decoding it as limited range would clip the colours.
    colour = np.empty((48, 64, 3), np.uint8)
    colour[:] = (250, 20, 5)
    path = tmp_path / "full_range.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.color_range, stream.codec_context.colorspace = 2, 1  # JPEG range, BT.709
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(colour, format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="JPEG")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert np.abs(next(read_frames(path)).astype(int) - colour).max() <= 3


@pytest.mark.parametrize("codec", ["h264", "ffv1"])
def test_audio_is_copied_packet_for_packet(tmp_path, codec):
    source = plain_pyav_mp4(tmp_path / "with_audio.mp4", audio=True)
    info = probe(source)
    assert info.has_audio
    out = write(tmp_path / f"out{output_suffix(codec)}", list(read_frames(source)), codec,
                frame_rate=info.frame_rate, audio_from=str(source))
    assert probe(out).has_audio
    assert len(list(read_frames(out))) == 20
    codec_in, packets_in = audio_packets(source)
    codec_out, packets_out = audio_packets(out)
    assert codec_out == codec_in == "aac"
    assert len(packets_out) == len(packets_in) > 10
    assert packets_out == packets_in


def test_audio_from_a_silent_video_gives_a_silent_output(tmp_path):
    source = plain_pyav_mp4(tmp_path / "silent.mp4")
    out = write(tmp_path / "out.mp4", random_frames(5), "h264", audio_from=str(source))
    assert not probe(out).has_audio


def test_missing_audio_source_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(VideoError, match="gone.mp4"):
        VideoWriter(tmp_path / "out.mp4", 64, 48, NTSC, audio_from=str(tmp_path / "gone.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_png_folder_output_and_input(tmp_path):
    frames = random_frames(n=11, height=33, width=40)
    folder = write(tmp_path / "frames", frames, "png")
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:06d}.png" for i in range(11)]
    info = probe(folder)
    assert (info.width, info.height, info.num_frames, info.frame_rate) == (40, 33, 11, Fraction(30))
    assert (info.has_audio, info.codec) == (False, "png")
    decoded = list(read_frames(folder))
    assert len(decoded) == 11
    for got, want in zip(decoded, frames, strict=True):
        np.testing.assert_array_equal(got, want)


def test_read_frames_streams(tmp_path):
    # The second half of the file is gone: a reader that decodes the whole file before returning would
    # fail on the first frame, a streaming one hands it over and fails only when it reaches the cut.
    path = write(tmp_path / "long.mp4", random_frames(n=30), "h264")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    frames = read_frames(path)
    assert inspect.isgenerator(frames)
    first = next(frames)
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    with pytest.raises(VideoError, match="long.mp4"):
        list(frames)


@pytest.mark.parametrize("make", ["missing", "text", "empty", "folder_without_frames", "audio_only"])
def test_unreadable_inputs_raise_video_error_naming_the_path(tmp_path, make):
    path = tmp_path / "input.mp4"
    if make == "text":
        path.write_text("this is not a video\n" * 20)
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "folder_without_frames":
        path = tmp_path / "frames"
        path.mkdir()
        (path / "notes.txt").write_text("no frames here")
    elif make == "audio_only":
        with av.open(str(path), "w") as out:
            out.add_stream("aac", rate=48000)
    for attempt in (lambda: probe(path), lambda: list(read_frames(path))):
        with pytest.raises(VideoError) as caught:
            attempt()
        assert str(path) in str(caught.value) and caught.value.path == str(path)


@pytest.mark.parametrize("kind", ["pyav_mp4", "faststart_mp4", "ffv1_mkv"])
def test_truncated_video_raises(tmp_path, kind):
    if kind == "pyav_mp4":  # index at the end: cut away, so the file does not even open
        path = plain_pyav_mp4(tmp_path / "cut.mp4")
    else:  # our writer's output: mp4 with the index in front, mkv with its duration in front
        codec = "h264" if kind == "faststart_mp4" else "ffv1"
        path = write(tmp_path / f"cut{output_suffix(codec)}", random_frames(20), codec)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="cut.m"):
        for _ in read_frames(path):
            pass


def test_truncated_mkv_missing_only_its_last_frame_raises(tmp_path):
    path = write(tmp_path / "cut.mkv", random_frames(20), "ffv1")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 97 // 100])
    with pytest.raises(VideoError, match="truncated"):
        list(read_frames(path))


@pytest.mark.parametrize("codec", ["h264", "ffv1", "png"])
def test_writer_is_atomic(tmp_path, codec):
    final = tmp_path / f"out{output_suffix(codec)}"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(final, 64, 48, NTSC, codec=codec) as writer:
            for frame in random_frames(5):
                writer.write(frame)
            assert not final.exists()
            # x264 may still hold all five frames in its lookahead, and the file is created on the first
            # packet, so for h264 the partial file may not exist yet.
            partial = [p.name for p in tmp_path.iterdir()]
            assert len(partial) == (0 if codec == "h264" else 1)
            assert all(name.startswith(f".{final.name}.partial-") for name in partial)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_abort_and_empty_writer_leave_nothing(tmp_path):
    writer = VideoWriter(tmp_path / "a.mp4", 64, 48, NTSC)
    writer.write(random_frames(1)[0])
    writer.abort()
    with pytest.raises(VideoError, match="no frames"):
        VideoWriter(tmp_path / "b.mkv", 64, 48, NTSC, codec="ffv1").close()
    assert list(tmp_path.iterdir()) == []


def test_writer_overwrites_an_existing_file_only_on_success(tmp_path):
    final = write(tmp_path / "out.mkv", random_frames(4, seed=1), "ffv1")
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(final, 64, 48, NTSC, codec="ffv1") as writer:
            writer.write(random_frames(1, seed=2)[0])
            raise KeyboardInterrupt
    np.testing.assert_array_equal(next(read_frames(final)), random_frames(1, seed=1)[0])
    write(final, random_frames(2, seed=3), "ffv1")
    np.testing.assert_array_equal(next(read_frames(final)), random_frames(1, seed=3)[0])


def test_bad_writer_arguments_raise_value_error_quoting_them(tmp_path):
    with pytest.raises(ValueError, match="'vp9'"):
        VideoWriter(tmp_path / "out.webm", 64, 48, NTSC, codec="vp9")
    with pytest.raises(ValueError, match="'vp9'"):
        output_suffix("vp9")
    with pytest.raises(ValueError, match="29.97"):
        VideoWriter(tmp_path / "out.mp4", 64, 48, 29.97)
    with pytest.raises(ValueError, match="out.mkv"):
        VideoWriter(tmp_path / "out.mkv", 64, 48, NTSC, codec="h264")
    writer = VideoWriter(tmp_path / "out.mp4", 64, 48, NTSC)
    with pytest.raises(ValueError, match=r"\(48, 64, 4\)"):
        writer.write(np.zeros((48, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        writer.write(np.zeros((48, 64, 3), np.float32))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_output_suffix():
    assert (output_suffix("h264"), output_suffix("ffv1"), output_suffix("png")) == (".mp4", ".mkv", "")


def test_video_error_keeps_path_and_cause_through_pickle():
    error = pickle.loads(pickle.dumps(VideoError("/data/a.mp4", "no such file")))
    assert (error.path, error.cause, str(error)) == ("/data/a.mp4", "no such file", "/data/a.mp4: no such file")


# ---- frame ranges, frame counts and joining segments (the distributed engine's I/O) ----


def _range_clip(tmp_path, kind, n=40):
    """A clip of ``n`` drifting frames at 30000/1001 (unless the kind names another rate)."""
    frames = moving_frames(n, 24, 32)
    if kind.startswith("h264_gop12"):  # x264 defaults (B-frames), a keyframe every 12 frames
        # mpegts has no index (a seek lands on the first keyframe after the time asked for) and starts
        # at pts 6006; avi stores no presentation times for B-frames (timestamps out of order).
        suffix = {"h264_gop12": ".mp4", "h264_gop12_ts": ".ts", "h264_gop12_avi": ".avi"}[kind]
        path = plain_pyav_mp4(tmp_path / f"gop12{suffix}", gop=12, frames=frames)
        with av.open(str(path)) as container:
            decoded = list(container.decode(video=0))
        assert any(f.pict_type == av.video.frame.PictureType.B for f in decoded)
        assert sum(f.key_frame for f in decoded) >= 3
        return path
    if kind == "h264_writer":  # our writer: one keyframe (x264's default interval is 250), B-frames
        return write(tmp_path / "writer.mp4", frames, "h264")
    if kind == "ffv1":  # FFmpeg's ffv1 encoder puts a keyframe every 12 frames; mkv stores milliseconds
        return write(tmp_path / "clip.mkv", frames, "ffv1")
    if kind == "ffv1_24000_1001":
        return write(tmp_path / "film.mkv", frames, "ffv1", frame_rate=Fraction(24000, 1001))
    if kind == "ffv1_with_audio":  # AAC's priming samples move the video's first pts to 21 ms
        source = plain_pyav_mp4(tmp_path / "with_audio.mp4", audio=True)
        path = write(tmp_path / "clip.mkv", frames, "ffv1", audio_from=str(source))
        with av.open(str(path)) as container:
            assert container.streams.video[0].start_time > 0
        return path
    return write(tmp_path / "frames", frames, "png")


@pytest.mark.parametrize("kind", ["h264_gop12", "h264_gop12_ts", "h264_gop12_avi", "h264_writer", "ffv1",
                                  "ffv1_24000_1001", "ffv1_with_audio", "png"])
def test_range_read_equals_the_slice_of_a_full_read(tmp_path, kind):
    path = _range_clip(tmp_path, kind)
    full = list(read_frames(path))
    assert len(full) == 40
    ranges = [(0, None), (0, 1), (0, 7), (5, 17), (11, 12), (12, 13), (13, 30), (23, 25), (25, None),
              (39, None), (39, 40), (30, 100), (20, 20), (17, 3)]
    ranges += [(start, start + 3) for start in range(40)]  # every start: mid-GOP, on and around keyframes
    for start, stop in ranges:
        got = list(read_frames(path, start, stop))
        want = full[start:stop]
        assert len(got) == len(want), (start, stop)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"range [{start}, {stop})")


class _CountingContainer:
    """An input container that counts the packets demuxed and the frames decoded through it."""

    def __init__(self, container, counts):
        self._container, self._counts = container, counts

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._container.close()

    def demux(self, *args, **kwargs):
        for packet in self._container.demux(*args, **kwargs):
            self._counts["work"] += packet.size > 0
            yield packet

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self._counts["work"] += 1
            yield frame


@pytest.mark.parametrize("kind", ["h264_gop12", "h264_gop12_ts", "ffv1"])
def test_range_read_seeks_instead_of_decoding_from_the_start(tmp_path, monkeypatch, kind):
    path = _range_clip(tmp_path, kind, n=240)
    full = list(read_frames(path))
    counts = {"work": 0}
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), counts))

    def work(start, stop):
        counts["work"] = 0
        frames = list(read_frames(path, start, stop))
        assert len(frames) == len(full[start:stop])
        for a, b in zip(frames, full[start:stop], strict=True):
            np.testing.assert_array_equal(a, b)
        return counts["work"]

    assert work(0, None) >= 240  # the counting sees a whole read
    assert work(200, 210) < 50  # from the keyframe before 200 (12 frames apart) to 210, not from 0
    assert work(228, None) < 50
    assert work(0, 10) < 30  # stops at ``stop``
    if kind == "ffv1":
        # Frame 204 is a keyframe, stored at 6807 ms though due at 6806.8 ms: the seek still finds it
        # (one frame decoded for the first frame's pts, then frames 204 and 205).
        assert work(204, 206) == 3


def test_range_read_errors(tmp_path):
    video = write(tmp_path / "clip.mkv", random_frames(20), "ffv1")
    folder = write(tmp_path / "frames", random_frames(5), "png")
    for path, n in ((video, 20), (folder, 5)):
        assert len(list(read_frames(path, n - 1))) == 1
        for start in (n, n + 7):
            with pytest.raises(VideoError, match=f"{path}.*cannot start at frame {start}"):
                list(read_frames(path, start))
        assert list(read_frames(path, 3, 3)) == []
    with pytest.raises(ValueError, match="-1"):
        read_frames(video, -1)
    with pytest.raises(ValueError, match="-2"):
        read_frames(video, 0, -2)
    # Truncated: a range that ends before the cut reads fine, one that runs to the end raises.
    data = video.read_bytes()
    video.write_bytes(data[: len(data) * 6 // 10])
    assert len(list(read_frames(video, 2, 6))) == 4
    with pytest.raises(VideoError, match="truncated"):
        list(read_frames(video, 4))


def test_count_frames(tmp_path):
    mp4 = write(tmp_path / "clip.mp4", random_frames(13), "h264")
    mkv = write(tmp_path / "clip.mkv", random_frames(14), "ffv1")
    folder = write(tmp_path / "frames", random_frames(5), "png")
    assert probe(mp4).num_frames == 13 and count_frames(mp4) == 13  # stated by the container
    assert probe(mkv).num_frames is None and count_frames(mkv) == 14  # counted
    assert count_frames(plain_pyav_mp4(tmp_path / "plain.mp4", n=9)) == 9
    assert count_frames(folder) == 5
    with pytest.raises(VideoError, match="gone.mkv"):
        count_frames(tmp_path / "gone.mkv")


def _split(tmp_path, frames, codec, sizes, crf=18):
    parts, start = [], 0
    for k, size in enumerate(sizes):
        parts.append(write(tmp_path / f"part{k}{output_suffix(codec)}", frames[start:start + size], codec,
                           crf=crf) if codec == "h264" else
                     write(tmp_path / f"part{k}{output_suffix(codec)}", frames[start:start + size], codec))
        start += size
    return parts


def _hidden(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("sizes", [(7, 7, 6), (1, 2, 17)])  # short parts: x264 uses no B-frames in them
@pytest.mark.parametrize("codec", ["h264", "ffv1", "png"])
def test_concat_segments_joins_without_reencoding(tmp_path, codec, sizes):
    frames = moving_frames(20)
    parts = _split(tmp_path, frames, codec, sizes)
    source = None if codec == "png" else plain_pyav_mp4(tmp_path / "with_audio.mp4", audio=True)
    target = tmp_path / f"joined{output_suffix(codec)}"
    total = concat_segments(parts, target, NTSC, codec, audio_from=None if source is None else str(source))
    assert total == 20 == count_frames(target)
    joined = list(read_frames(target))
    if codec == "h264":  # the same compressed frames, so the same decoded pixels
        want = [frame for part in parts for frame in read_frames(part)]
    else:  # lossless: the frames themselves, as when all 20 are written at once
        want = list(read_frames(write(tmp_path / f"all{output_suffix(codec)}", frames, codec)))
        for a, b in zip(want, frames, strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(joined) == len(want) == 20
    for a, b in zip(joined, want, strict=True):
        np.testing.assert_array_equal(a, b)
    info = probe(target)
    if codec == "png":
        assert sorted(p.name for p in target.iterdir()) == [f"{i:06d}.png" for i in range(20)]
        assert not info.has_audio
    else:
        assert info.frame_rate == NTSC and isinstance(info.frame_rate, Fraction)
        assert info.has_audio and audio_packets(target) == audio_packets(source)
        # A range read of the joined file agrees too (its timestamps run on across the joins).
        for a, b in zip(read_frames(target, 8, 15), want[8:15], strict=True):
            np.testing.assert_array_equal(a, b)
    assert _hidden(tmp_path) == []
    for part in parts:  # the parts are left as they were
        assert part.exists()


@pytest.mark.parametrize("codec", ["h264", "ffv1", "png"])
def test_concat_segments_single_part(tmp_path, codec):
    frames = random_frames(6)
    (part,) = _split(tmp_path, frames, codec, (6,))
    target = tmp_path / f"out{output_suffix(codec)}"
    assert concat_segments([part], target, NTSC, codec) == 6
    for a, b in zip(read_frames(target), read_frames(part), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("codec", ["h264", "ffv1", "png"])
def test_concat_segments_failure_leaves_nothing(tmp_path, codec):
    parts = _split(tmp_path, random_frames(12), codec, (6, 6))
    target = tmp_path / f"out{output_suffix(codec)}"
    gone = tmp_path / f"gone{output_suffix(codec)}"
    with pytest.raises(VideoError, match=str(gone)):
        concat_segments([parts[0], gone, parts[1]], target, NTSC, codec)
    assert not target.exists() and _hidden(tmp_path) == []
    # A part of another size.
    other = write(tmp_path / f"small{output_suffix(codec)}", random_frames(3, 24, 32), codec)
    with pytest.raises(VideoError, match=f"{other}.*32x24"):
        concat_segments([parts[0], other], target, NTSC, codec)
    assert not target.exists() and _hidden(tmp_path) == []
    if codec == "png":
        return
    # A truncated last part: found while copying, after the output was started.
    cut = tmp_path / f"cut{output_suffix(codec)}"
    data = write(cut, random_frames(30), codec).read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    target.write_bytes(b"the previous output")
    with pytest.raises(VideoError, match=str(cut)):
        concat_segments([parts[0], parts[1], cut], target, NTSC, codec)
    assert target.read_bytes() == b"the previous output" and _hidden(tmp_path) == []
    with pytest.raises(VideoError, match=r"frame rate is 30000/1001, expected 25"):
        concat_segments(parts, tmp_path / f"rate{output_suffix(codec)}", Fraction(25), codec)
    assert _hidden(tmp_path) == []


def test_concat_segments_refuses_h264_parts_with_other_sps_pps(tmp_path):
    # Another crf changes the PPS (its initial quantiser): after a remux that part would decode wrongly.
    first = write(tmp_path / "a.mp4", random_frames(4), "h264")
    other = write(tmp_path / "b.mp4", random_frames(4), "h264", crf=30)
    with pytest.raises(VideoError, match=f"{other}.*SPS/PPS"):
        concat_segments([first, other], tmp_path / "out.mp4", NTSC, "h264")
    assert not (tmp_path / "out.mp4").exists() and _hidden(tmp_path) == []


def test_concat_segments_bad_arguments_raise_value_error(tmp_path):
    part = write(tmp_path / "a.mkv", random_frames(2), "ffv1")
    with pytest.raises(ValueError, match="'vp9'"):
        concat_segments([part], tmp_path / "out.webm", NTSC, "vp9")
    with pytest.raises(ValueError, match="out.mp4"):
        concat_segments([part], tmp_path / "out.mp4", NTSC, "ffv1")
    with pytest.raises(ValueError, match="29.97"):
        concat_segments([part], tmp_path / "out.mkv", 29.97, "ffv1")
    with pytest.raises(ValueError, match="no parts"):
        concat_segments([], tmp_path / "out.mkv", NTSC, "ffv1")
    with pytest.raises(ValueError, match="audio"):
        concat_segments([tmp_path / "frames"], tmp_path / "frames_out", NTSC, "png", audio_from=str(part))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mkv"]
