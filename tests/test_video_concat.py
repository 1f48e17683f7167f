"""satecco.video.concat: joining the segments of one video (the distributed engine's I/O) on real files
written into tmp_path (no mocks)."""

from fractions import Fraction

import numpy as np
import pytest
from media import NTSC, audio_packets, moving_frames, plain_pyav_mp4, random_frames, write

from satecco.errors import VideoError
from satecco.video.codecs import EncoderSettings
from satecco.video.concat import concat_segments
from satecco.video.formats import output_suffix
from satecco.video.read import count_frames, probe, read_frames


def _split(tmp_path, frames, codec, sizes):
    parts, start = [], 0
    for k, size in enumerate(sizes):
        parts.append(write(tmp_path / f"part{k}{output_suffix(codec)}", frames[start:start + size], codec))
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
    total = concat_segments(parts, target, NTSC, codec, source=None if source is None else str(source))
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
    other = write(tmp_path / "b.mp4", random_frames(4), "h264", encoder=EncoderSettings(crf=30))
    with pytest.raises(VideoError, match=f"{other}.*SPS/PPS"):
        concat_segments([first, other], tmp_path / "out.mp4", NTSC, "h264")
    assert not (tmp_path / "out.mp4").exists() and _hidden(tmp_path) == []


def test_concat_segments_bad_arguments_raise_value_error(tmp_path):
    part = write(tmp_path / "a.mkv", random_frames(2), "ffv1")
    with pytest.raises(ValueError, match="'theora'"):
        concat_segments([part], tmp_path / "out.ogv", NTSC, "theora")
    with pytest.raises(ValueError, match="out.mp4"):
        concat_segments([part], tmp_path / "out.mp4", NTSC, "ffv1")
    with pytest.raises(ValueError, match="29.97"):
        concat_segments([part], tmp_path / "out.mkv", 29.97, "ffv1")
    with pytest.raises(ValueError, match="no parts"):
        concat_segments([], tmp_path / "out.mkv", NTSC, "ffv1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mkv"]
