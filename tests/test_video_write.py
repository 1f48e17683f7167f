"""satecco.video.write (and reading back what it wrote) on real files written into tmp_path (no mocks)."""

from fractions import Fraction

import numpy as np
import pytest
from media import NTSC, random_frames, write

from satecco.errors import VideoError
from satecco.video.formats import output_suffix
from satecco.video.read import probe, read_frames
from satecco.video.write import VideoWriter


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
            assert all(name.startswith(f".{final.stem}.partial-") and name.endswith(final.suffix)
                       for name in partial)
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
    with pytest.raises(ValueError, match="'theora'"):
        VideoWriter(tmp_path / "out.ogv", 64, 48, NTSC, codec="theora")
    with pytest.raises(ValueError, match="'theora'"):
        output_suffix("theora")
    with pytest.raises(ValueError, match="av1 needs even sides; got 65x48"):
        VideoWriter(tmp_path / "out.mp4", 65, 48, NTSC, codec="av1")
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


@pytest.mark.parametrize("codec, bits", [("ffv1", 10), ("ffv1", 16), ("png", 16)])
def test_deep_frames_round_trip_at_their_depth(tmp_path, codec, bits):
    """uint16 frames whose values a ``bits``-deep file holds exactly come back bit for bit."""
    rng = np.random.default_rng(3)
    levels = rng.integers(0, 1 << bits, (4, 24, 32, 3))
    frames = (levels << (16 - bits) | levels >> (2 * bits - 16)) if bits < 16 else levels  # FFmpeg's expansion
    frames = frames.astype(np.uint16)
    path = tmp_path / f"deep{output_suffix(codec)}"
    with VideoWriter(path, 32, 24, NTSC, codec=codec, bits=bits) as writer:
        for frame in frames:
            writer.write(frame)
    np.testing.assert_array_equal(np.stack(list(read_frames(path, bits=16))), frames)
    with pytest.raises(ValueError, match="uint16"), \
            VideoWriter(tmp_path / "other.mkv", 32, 24, NTSC, codec="ffv1", bits=10) as writer:
        writer.write(frames[0].astype(np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing half-written left
    with pytest.raises(ValueError, match="8 to 10 bits"):
        VideoWriter(tmp_path / "deep.mp4", 32, 24, NTSC, codec="h264", bits=12)
