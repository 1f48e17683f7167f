"""satecco.video.read on real files written with PyAV into tmp_path (no mocks): probing, streaming,
unreadable and truncated inputs, frame ranges and frame counts."""

import inspect
import pickle
from fractions import Fraction

import av
import numpy as np
import pytest
from media import NTSC, moving_frames, plain_pyav_mp4, random_frames, write

from satecco.errors import VideoError
from satecco.video.concat import concat_segments
from satecco.video.formats import output_suffix
from satecco.video.read import count_frames, probe, read_frames


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


def test_video_error_keeps_path_and_cause_through_pickle():
    error = pickle.loads(pickle.dumps(VideoError("/data/a.mp4", "no such file")))
    assert (error.path, error.cause, str(error)) == ("/data/a.mp4", "no such file", "/data/a.mp4: no such file")


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
        path = tmp_path / "clip.mkv"
        concat_segments([write(tmp_path / "video.mkv", frames, "ffv1")], path, NTSC, "ffv1", source=str(source))
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
