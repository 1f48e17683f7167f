"""Reading: :func:`probe` a video file or frame folder, :func:`count_frames`, and :func:`read_frames`
one at a time (at 8 or 16 bits, deinterlaced on request), a range of them by seeking to the keyframe
before it; :class:`Tally` checks that a video stream holds what its container promises
(:func:`promised_length`)."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from satecco.errors import VideoError
from satecco.video.codecs import format_bits
from satecco.video.formats import (
    FOLDER_FRAME_RATE,
    decode_image,
    frame_files,
    frame_rate_of,
    open_input,
    read_image,
    reason,
    to_rgb,
    video_stream,
)
from satecco.video.picture import Colour, Picture, picture_of


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video file or frame folder without decoding it all."""

    path: str
    width: int
    height: int
    num_frames: int | None  # from container metadata; None when the container does not say (mkv, webm)
    frame_rate: Fraction
    has_audio: bool
    codec: str
    picture: Picture = Picture()  # bit depth, colour tags, SAR, display matrix, interlacing


def probe(path) -> VideoInfo:
    """Size, frame count, exact frame rate, audio and codec of a video file or frame folder.

    Decodes the first frame, so a file that opens but holds no decodable frame is rejected here.
    Raises :class:`VideoError` for a missing path, a file that is not a video, a video without a video
    stream, and an empty video or folder.
    """
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        first = decode_image(files[0])
        return VideoInfo(str(path), first.width, first.height, len(files), FOLDER_FRAME_RATE, False,
                         files[0].suffix.lower().lstrip("."),
                         Picture(pix_fmt=first.format.name, bits=min(format_bits(first.format.name), 16),
                                 colour=Colour.of(first)))
    with open_input(path) as container:
        stream = video_stream(container, path)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as e:
            raise VideoError(path, f"decode error in the first frame: {reason(e)}") from e
        if first is None:
            raise VideoError(path, "empty video: no frame could be decoded")
        return VideoInfo(
            path=str(path),
            width=first.width,
            height=first.height,
            num_frames=stream.frames or None,
            frame_rate=frame_rate_of(stream, path),
            has_audio=len(container.streams.audio) > 0,
            codec=stream.codec_context.name,
            picture=picture_of(stream, first),
        )



def count_frames(path, info: VideoInfo | None = None) -> int:
    """The number of frames of a video file or frame folder, without decoding the pictures (but the
    first, which :func:`probe` decodes to check the file).

    The count the container states (mp4 and mov count their samples; see :attr:`VideoInfo.num_frames`)
    where it states one, else the number of video packets, demuxed but not decoded (one per frame for
    the codecs this package writes), and the number of frame files for a folder. Raises
    :class:`VideoError` where :func:`probe` does, and on a demux error. ``info``: :func:`probe`'s answer
    for ``path`` when the caller has it already (the first frame is then not decoded again).
    """
    info = info or probe(path)
    if info.num_frames is not None:
        return info.num_frames
    path = Path(path)
    with open_input(path) as container:
        stream = video_stream(container, path)
        packets = 0
        try:
            for packet in container.demux(stream):
                packets += packet.size > 0  # the last, empty packet only flushes the decoder
        except av.FFmpegError as e:
            raise VideoError(path, f"demux error after {packets} packets: {reason(e)}") from e
    return packets


def read_frames(path, start: int = 0, stop: int | None = None, bits: int = 8,
                deinterlace: bool = False) -> Iterator[np.ndarray]:
    """Yield the frames of a video file or frame folder one at a time, each ``(H, W, 3)`` RGB:
    ``uint8`` for ``bits`` 8, else ``uint16`` (16 bits, FFmpeg's ``rgb48``; see :mod:`satecco.video.picture`).
    ``deinterlace``: each frame goes through FFmpeg's ``bwdif`` (one frame out per frame in), which
    reads its two neighbours; a range read decodes one frame more on each side, so that it gives the
    frames a whole read gives.

    With ``start``/``stop``, only the frames with index in ``[start, stop)`` are yielded, where a frame's
    index is its position in the decoded video (0-based): the frames of
    ``list(read_frames(path))[start:stop]``, without decoding the rest. A video file is not decoded from
    its beginning: the reader seeks to the last keyframe at or before ``start`` and tells the frames'
    indices from their timestamps (relative to the first frame's, at the stream's frame rate). Where
    those cannot be trusted (no timestamps, a variable frame rate, a seek that lands after ``start``,
    timestamps that skip or repeat a frame before ``start``) it decodes from the beginning instead.
    Decoding stops at ``stop``; a ``stop`` past the end reads to the end; ``stop <= start`` yields
    nothing and reads nothing.

    A generator: the file is opened on the first ``next()`` and only a few frames are in memory at once.
    Raises :class:`VideoError` (naming the file) on a decode error, when the video stops before the
    frame count or duration its container states (a truncated file), when no frame was decoded, and when
    ``start > 0`` is not before the end. The truncation checks run after the last frame, and only when
    the read reaches the end of the video: a consumer that stops early, or a ``stop`` before the end,
    never sees them. A negative ``start`` or ``stop`` raises :class:`ValueError` at once.
    """
    start = operator.index(start)
    stop = None if stop is None else operator.index(stop)
    if start < 0 or (stop is not None and stop < 0):
        raise ValueError(f"start and stop must be frame indices >= 0; got start={start!r}, stop={stop!r}")
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, start, stop, bits)
    if not deinterlace:
        return (to_rgb(frame, bits) for frame in _read_frames(path, start, stop))
    return (to_rgb(frame, bits) for frame in _deinterlaced(path, start, stop))


def _deinterlaced(path: Path, start: int, stop: int | None) -> Iterator:
    """Decoded frames ``[start, stop)`` of ``path`` through ``bwdif``, from frames ``[start - 1, stop + 1)``."""
    if stop is not None and stop <= start:
        return
    first = max(start - 1, 0)
    frames = _read_frames(path, first, None if stop is None else stop + 1)
    for index, frame in enumerate(bwdif(frames), first):
        if index >= start and (stop is None or index < stop):
            yield frame


def bwdif(frames: Iterable) -> Iterator:
    """FFmpeg's ``bwdif`` deinterlacer (``send_frame``: one frame out per frame in, every frame
    deinterlaced) over decoded ``av.VideoFrame`` s; a filter graph is FFmpeg's own, nothing by hand."""
    graph = sink = None
    for frame in _then_none(iter(frames)):
        if graph is None:
            if frame is None:
                return
            graph = av.filter.Graph()
            source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                      time_base=frame.time_base or Fraction(1, 1000))
            filtered = graph.add("bwdif", "mode=send_frame:parity=auto:deint=all")
            sink = graph.add("buffersink")
            source.link_to(filtered)
            filtered.link_to(sink)
            graph.configure()
        graph.push(frame)
        while True:
            try:
                yield graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break


def _then_none(frames: Iterator) -> Iterator:
    yield from frames
    yield None


# How many frames before ``start`` a range read seeks to, in turn, while the seek lands after ``start``
# (mpegts, which has no index, lands on the first keyframe after the time asked for; a demuxer that
# seeks by decode time lands late where there are B-frames). Past the last, or where ``start`` is too
# close to the beginning for the next, it decodes from the beginning.
_SEEK_BACK = (0, 16, 64, 256, 1024, 4096)


def _read_frames(path: Path, start: int, stop: int | None) -> Iterator:
    """Decoded ``av.VideoFrame`` s ``[start, stop)`` of a video file."""
    if stop is not None and stop <= start:
        return
    for back in _SEEK_BACK:
        if start == 0 or back > start:
            break
        try:
            yield from _read_video(path, start, stop, seek_back=back)
            return
        except _SeekMiss as miss:  # raised before the first frame is yielded, so nothing is yielded twice
            if not miss.late:
                break
    yield from _read_video(path, start, stop, seek_back=None)


def _read_folder(folder: Path, start: int, stop: int | None, bits: int) -> Iterator[np.ndarray]:
    if stop is not None and stop <= start:
        return
    files = frame_files(folder)
    if 0 < len(files) <= start:
        raise VideoError(folder, f"cannot start at frame {start}: the folder holds {len(files)} frames")
    first = read_image(files[0]).shape if start > 0 else None  # every frame must match frame 0
    for file in files[start:stop]:
        frame = read_image(file, bits)
        if first is None:
            first = frame.shape
        elif frame.shape != first:
            raise VideoError(file, f"frame is {frame.shape[1]}x{frame.shape[0]}, the first frame of "
                                   f"the folder is {first[1]}x{first[0]}")
        yield frame


class _SeekMiss(Exception):
    """After a seek, the frames' timestamps do not tell their indices (``late``: the seek landed after
    the frame wanted, an earlier one may do)."""

    def __init__(self, late: bool = False):
        super().__init__()
        self.late = late


def promised_length(container, stream) -> tuple[int | None, Fraction | None]:
    """What the container says the video stream holds, to catch truncated files: a frame count (mp4 and
    mov count their samples) or else the stream's end time in seconds (None where it says neither)."""
    if stream.frames:
        return stream.frames, None
    # Matroska's per-stream tag first (the stream's end time, HH:MM:SS.nnnnnnnnn): where a container
    # states no duration per stream (Matroska), FFmpeg fills ``stream.duration`` with the container's,
    # which a longer audio or subtitle stream sets.
    if "DURATION" in stream.metadata:
        try:
            hours, minutes, seconds = stream.metadata["DURATION"].split(":")
            return None, int(hours) * 3600 + int(minutes) * 60 + Fraction(seconds)
        except ValueError:
            return None, None
    if stream.duration:
        return None, (stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base
    if len(container.streams) == 1 and container.duration:  # the container's duration is the video's
        return None, Fraction((container.start_time or 0) + container.duration, av.time_base)
    return None, None


class Tally:
    """What the demuxed video packets say about the video's length, to catch a truncated file."""

    def __init__(self, frame_time: Fraction):
        self.frame_time = frame_time
        self.packets = 0  # packets holding data (the last, empty packet only flushes the decoder)
        self.end = None  # the latest end time of a packet, in seconds
        self.last_pts = None  # the latest pts of a packet, in the stream's time base

    def count(self, packet) -> None:
        self.packets += packet.size > 0
        if packet.size and packet.pts is not None:
            duration = packet.duration * packet.time_base if packet.duration else self.frame_time
            packet_end = packet.pts * packet.time_base + duration
            self.end = packet_end if self.end is None else max(self.end, packet_end)
            self.last_pts = packet.pts if self.last_pts is None else max(self.last_pts, packet.pts)

    def check(self, path: Path, promised_frames: int | None, promised_end: Fraction | None) -> None:
        """Raise :class:`VideoError` where the packets stop before what the container promises (see
        :func:`promised_length`)."""
        if promised_frames is not None and self.packets < promised_frames:
            raise VideoError(path, f"truncated: the container promises {promised_frames} frames, "
                                   f"the file holds {self.packets}")
        if promised_end is not None and self.end is not None and self.end < promised_end - self.frame_time / 2:
            raise VideoError(path, f"truncated: the video stops at {float(self.end):.3f} s, the container "
                                   f"promises {float(promised_end):.3f} s")


def _read_video(path: Path, start: int, stop: int | None, seek_back: int | None) -> Iterator:
    """Frames ``[start, stop)`` of a video file, decoded from its beginning (``seek_back=None``) or from
    the keyframe at or before frame ``start - seek_back``. After a seek, raises :class:`_SeekMiss` (before
    yielding anything) where the frames' timestamps do not give their indices."""
    with open_input(path) as container:
        stream = video_stream(container, path)
        # Left at PyAV's default (slice) threading on purpose: with frame threading ("AUTO", "FRAME")
        # FFmpeg drops frames it cannot decode without reporting an error.
        promised_frames, promised_end = promised_length(container, stream)
        rate = stream.guessed_rate or stream.average_rate
        frame_time = 1 / Fraction(rate) if rate else Fraction(0)
        tally = Tally(frame_time)
        index = 0  # the index of the next frame decoded; after a seek, the first frame's pts sets it
        index_of = None  # pts -> frame index, after a seek
        try:
            if seek_back is not None:
                index_of = _seek(container, stream, start - seek_back)
                index = None
            for packet in container.demux(stream):
                tally.count(packet)
                for frame in packet.decode():
                    if index is None or (index_of is not None and index <= start):
                        # Up to ``start``, each frame's pts must give the index its position does.
                        at = None if frame.pts is None else index_of(frame.pts)
                        if at is None or (index is not None and at != index):
                            raise _SeekMiss
                        if at > start:
                            raise _SeekMiss(late=True)
                        index = at
                    if index >= start:
                        yield frame
                    index += 1
                    if stop is not None and index >= stop:
                        return  # the rest of the file is neither read nor checked
        except av.FFmpegError as e:
            raise VideoError(path, f"decode error after {index or 0} frames: {reason(e)}") from e
    if index is None:
        raise _SeekMiss(late=True)  # no frame came after the seek: it landed at the end
    if index == 0:
        raise VideoError(path, "empty video: no frame could be decoded")
    if index_of is not None:  # packets before the seek point were not demuxed: count up to the last one
        tally.packets = 0 if tally.last_pts is None else index_of(tally.last_pts) + 1
    tally.check(path, promised_frames, promised_end)
    if index <= start:
        raise VideoError(path, f"cannot start at frame {start}: the video has {index} frames")


def _seek(container, stream, frame: int):
    """Seek ``container`` to the keyframe at or before frame ``frame`` of ``stream``; return the function
    from a pts to a frame index. Raises :class:`_SeekMiss` where timestamps cannot give indices."""
    rate, average = stream.guessed_rate, stream.average_rate
    if not rate or (average and abs(average / rate - 1) > Fraction(1, 100)) or stream.time_base is None:
        raise _SeekMiss  # no rate, or a variable one (see frame_rate_of)
    # The reference is the first frame a plain read decodes: frame 0.
    first = next(container.decode(stream), None)
    if first is None or first.pts is None:
        raise _SeekMiss
    origin, ticks = first.pts, 1 / (Fraction(rate) * stream.time_base)  # pts per frame
    # Aim half a frame late: a container that rounds timestamps (matroska: to the millisecond) may put
    # frame ``frame`` a little after its exact time, never half a frame.
    try:
        container.seek(origin + math.floor((frame + Fraction(1, 2)) * ticks), stream=stream,
                       backward=True, any_frame=False)
    except av.FFmpegError as e:  # e.g. a stream that cannot seek
        raise _SeekMiss from e
    return lambda pts: round((pts - origin) / ticks)
