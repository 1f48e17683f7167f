"""Streaming video I/O with PyAV: probe, read frame by frame, write atomically.

Frames on this side are ``(H, W, 3)`` uint8 RGB, one at a time; a clip is ``(T, H, W, C)`` (see
:mod:`satecco.layout` for the model side). Rules, after PyAV's own examples rather than torchvision's
reader:

- frame rates are exact :class:`~fractions.Fraction` s (29.97 stays ``30000/1001``), every written frame
  gets an integer ``pts`` in a ``1/frame_rate`` time base, and encoders are flushed;
- nothing decodes a whole file at once: :func:`read_frames` is a generator, and reads a range of frames
  by seeking to the keyframe before it rather than decoding from the start;
- a decode error, a truncated file or a file with no frames raises :class:`VideoError` naming the file;
- :class:`VideoWriter` writes to a hidden temporary name beside the target and renames it on success,
  so a crash never leaves a half-written video at the final path; :func:`concat_segments` joins the
  outputs of several writers (the segments of one video) the same way, without re-encoding.

A folder of ``.png`` files (sorted by name, so zero-pad the numbers) is accepted wherever a video is,
at :data:`FOLDER_FRAME_RATE` and without audio.

Colour: h264 output is converted with BT.709 coefficients in limited range and tagged as such, so
players and this reader agree on the colours; decoding honours the colour space and range the file is
tagged with. ``ffv1`` (``bgr0``) and ``png`` (``rgb24``) store RGB losslessly: a round trip is bit-exact.
"""

from __future__ import annotations

import math
import operator
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from satecco.errors import VideoError

# Video file suffixes taken as inputs when a folder of inputs is given.
EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".flv",
     ".wmv", ".ogv", ".3gp", ".y4m"}
)
FOLDER_FRAME_RATE = Fraction(30)
# codec -> (file suffix, container format, pixel format stored)
_CODECS = {"h264": (".mp4", "mp4", "yuv420p"), "ffv1": (".mkv", "matroska", "bgr0"), "png": ("", None, "rgb24")}
CODECS = tuple(_CODECS)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video file or PNG frame folder without decoding it all."""

    path: str
    width: int
    height: int
    num_frames: int | None  # from container metadata; None when the container does not say (mkv, webm)
    frame_rate: Fraction
    has_audio: bool
    codec: str


def output_suffix(codec: str) -> str:
    """The file suffix :class:`VideoWriter` expects for ``codec``: ``.mp4``, ``.mkv``, or ``""`` (a folder)."""
    if codec not in _CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(_CODECS)}")
    return _CODECS[codec][0]


def probe(path) -> VideoInfo:
    """Size, frame count, exact frame rate, audio and codec of a video file or PNG frame folder.

    Decodes the first frame, so a file that opens but holds no decodable frame is rejected here.
    Raises :class:`VideoError` for a missing path, a file that is not a video, a video without a video
    stream, and an empty video or folder.
    """
    path = Path(path)
    if path.is_dir():
        files = _frame_files(path)
        first = _read_png(files[0])
        return VideoInfo(str(path), first.shape[1], first.shape[0], len(files), FOLDER_FRAME_RATE, False, "png")
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as e:
            raise VideoError(path, f"decode error in the first frame: {_reason(e)}") from e
        if first is None:
            raise VideoError(path, "empty video: no frame could be decoded")
        return VideoInfo(
            path=str(path),
            width=first.width,
            height=first.height,
            num_frames=stream.frames or None,
            frame_rate=_frame_rate(stream, path),
            has_audio=len(container.streams.audio) > 0,
            codec=stream.codec_context.name,
        )


def count_frames(path) -> int:
    """The number of frames of a video file or PNG frame folder, without decoding the pictures (but the
    first, which :func:`probe` decodes to check the file).

    The count the container states (mp4 and mov count their samples; see :attr:`VideoInfo.num_frames`)
    where it states one, else the number of video packets, demuxed but not decoded (one per frame for
    the codecs this module writes), and the number of ``.png`` files for a folder. Raises
    :class:`VideoError` where :func:`probe` does, and on a demux error.
    """
    info = probe(path)
    if info.num_frames is not None:
        return info.num_frames
    path = Path(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        packets = 0
        try:
            for packet in container.demux(stream):
                packets += packet.size > 0  # the last, empty packet only flushes the decoder
        except av.FFmpegError as e:
            raise VideoError(path, f"demux error after {packets} packets: {_reason(e)}") from e
    return packets


def read_frames(path, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video file or PNG frame folder one at a time, each ``(H, W, 3)`` uint8 RGB.

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
    return _read_frames(Path(path), start, stop)


# How many frames before ``start`` a range read seeks to, in turn, while the seek lands after ``start``
# (mpegts, which has no index, lands on the first keyframe after the time asked for; a demuxer that
# seeks by decode time lands late where there are B-frames). Past the last, or where ``start`` is too
# close to the beginning for the next, it decodes from the beginning.
_SEEK_BACK = (0, 16, 64, 256, 1024, 4096)


def _read_frames(path: Path, start: int, stop: int | None) -> Iterator[np.ndarray]:
    if stop is not None and stop <= start:
        return
    if path.is_dir():
        yield from _read_folder(path, start, stop)
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


def _read_folder(folder: Path, start: int, stop: int | None) -> Iterator[np.ndarray]:
    files = _frame_files(folder)
    if 0 < len(files) <= start:
        raise VideoError(folder, f"cannot start at frame {start}: the folder holds {len(files)} frames")
    first = _read_png(files[0]).shape if start > 0 else None  # every frame must match frame 0
    for file in files[start:stop]:
        frame = _read_png(file)
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


class _Tally:
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
        :func:`_promised_length`)."""
        if promised_frames is not None and self.packets < promised_frames:
            raise VideoError(path, f"truncated: the container promises {promised_frames} frames, "
                                   f"the file holds {self.packets}")
        if promised_end is not None and self.end is not None and self.end < promised_end - self.frame_time / 2:
            raise VideoError(path, f"truncated: the video stops at {float(self.end):.3f} s, the container "
                                   f"promises {float(promised_end):.3f} s")


def _read_video(path: Path, start: int, stop: int | None, seek_back: int | None) -> Iterator[np.ndarray]:
    """Frames ``[start, stop)`` of a video file, decoded from its beginning (``seek_back=None``) or from
    the keyframe at or before frame ``start - seek_back``. After a seek, raises :class:`_SeekMiss` (before
    yielding anything) where the frames' timestamps do not give their indices."""
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        # Left at PyAV's default (slice) threading on purpose: with frame threading ("AUTO", "FRAME")
        # FFmpeg drops frames it cannot decode without reporting an error.
        promised_frames, promised_end = _promised_length(container, stream)
        rate = stream.guessed_rate or stream.average_rate
        frame_time = 1 / Fraction(rate) if rate else Fraction(0)
        tally = _Tally(frame_time)
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
                        yield _to_rgb(frame)
                    index += 1
                    if stop is not None and index >= stop:
                        return  # the rest of the file is neither read nor checked
        except av.FFmpegError as e:
            raise VideoError(path, f"decode error after {index or 0} frames: {_reason(e)}") from e
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
        raise _SeekMiss  # no rate, or a variable one (see _frame_rate)
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


class VideoWriter:
    """Encode ``(H, W, 3)`` uint8 RGB frames to ``path``; a context manager.

    Codecs: ``"h264"`` (``.mp4``, libx264 at ``crf``, yuv420p, or yuv444p when width or height is odd
    since 4:2:0 needs even sizes; yuv444p plays in ffmpeg-based players but not in most browsers),
    ``"ffv1"`` (``.mkv``, lossless bgr0, bit-exact RGB round trip; version 3 with slice CRCs, the archival
    setting, though FFmpeg's decoder only logs a CRC mismatch) and ``"png"`` (a folder of ``000000.png``, ``000001.png``, ...).

    Frame ``i`` gets ``pts = i`` in time base ``1 / frame_rate``, so the output has exactly the frame rate
    and frame count it was given. With ``audio_from``, the first audio stream of that file (if it has one)
    is copied packet for packet, not re-encoded, interleaved with the video as it is written.

    Nothing appears at ``path`` until :meth:`close` succeeds: the output is written to
    ``.<name>.partial-<random>`` in the same folder and moved into place with :func:`os.replace`. An
    exception inside the ``with`` block, or :meth:`abort`, deletes it.
    """

    def __init__(self, path, width: int, height: int, frame_rate: Fraction, codec: str = "h264",
                 crf: int = 18, audio_from: str | None = None):
        self.path = Path(path)
        container_format, pix_fmt = _check_target(self.path, codec, audio_from)
        if isinstance(frame_rate, (float, bool)):
            raise ValueError(f"frame_rate must be exact (a Fraction or int, e.g. Fraction(30000, 1001)); "
                             f"got {frame_rate!r}")
        if not (int(width) > 0 and int(height) > 0):
            raise ValueError(f"width and height must be positive; got {width}x{height}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51]; got {crf!r}")
        self.frame_rate = Fraction(frame_rate)
        if self.frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive; got {frame_rate!r}")
        self.width, self.height, self.codec = int(width), int(height), codec
        self.frames_written = 0
        self._closed = False
        self._out = self._audio = None
        self._tmp = _temporary_path(self.path)
        try:
            if codec == "png":
                self._tmp.mkdir()
                self._encoder = av.CodecContext.create("png", "w")
                self._encoder.time_base = 1 / self.frame_rate
            else:
                options = {"movflags": "+faststart"} if codec == "h264" else {}
                self._out = av.open(str(self._tmp), "w", format=container_format, options=options)
                if codec == "h264":
                    if self.width % 2 or self.height % 2:
                        pix_fmt = "yuv444p"
                    self._encoder = self._out.add_stream("libx264", rate=self.frame_rate, options={"crf": str(crf)})
                    cc = self._encoder.codec_context
                    # Tags written to the h264 stream: AVCOL_SPC_BT709, AVCOL_RANGE_MPEG (limited),
                    # AVCOL_PRI_BT709, AVCOL_TRC_BT709 are all 1 in FFmpeg's enums.
                    cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1
                else:
                    self._encoder = self._out.add_stream("ffv1", rate=self.frame_rate,
                                                         options={"level": "3", "slicecrc": "1"})
                self._encoder.time_base = 1 / self.frame_rate
                self._encoder.codec_context.time_base = 1 / self.frame_rate
            self._encoder.width, self._encoder.height, self._encoder.pix_fmt = self.width, self.height, pix_fmt
            if audio_from is not None:
                self._audio = _AudioCopy(Path(audio_from), self._out, codec)
        except BaseException:
            self.abort()
            raise

    def write(self, frame: np.ndarray) -> None:
        """Append one frame, ``(H, W, 3)`` uint8 RGB with the writer's height and width."""
        if self._closed:
            raise RuntimeError(f"VideoWriter for {str(self.path)!r} is closed")
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.height}, {self.width}, 3) uint8 RGB; "
                             f"got shape {frame.shape} {frame.dtype}")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if self.codec == "h264":
            video_frame = video_frame.reformat(format=self._encoder.pix_fmt, dst_colorspace="ITU709",
                                               dst_color_range="MPEG")
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / self.frame_rate
        try:
            if self.codec == "png":
                for packet in self._encoder.encode(video_frame):
                    (self._tmp / f"{self.frames_written:06d}.png").write_bytes(bytes(packet))
            else:
                self._out.mux(self._encoder.encode(video_frame))
                if self._audio is not None:
                    self._audio.mux_until((self.frames_written + 1) / self.frame_rate)
        except av.FFmpegError as e:
            raise VideoError(self.path, f"encode error at frame {self.frames_written}: {_reason(e)}") from e
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio, and move the finished output to ``path``."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise VideoError(self.path, "no frames were written; nothing saved")
            if self._out is not None:
                try:
                    self._out.mux(self._encoder.encode(None))
                    if self._audio is not None:
                        self._audio.mux_until(None)
                    self._out.close()
                except av.FFmpegError as e:
                    raise VideoError(self.path, f"cannot finish writing: {_reason(e)}") from e
                self._out = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._close_audio_source()
        self._closed = True

    def abort(self) -> None:
        """Stop writing and delete the partial output; ``path`` is left untouched."""
        self._closed = True
        if self._out is not None:
            try:
                self._out.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # a half-written container may fail to finalise; it is deleted next anyway
            self._out = None
        self._close_audio_source()
        _remove(self._tmp)

    def _close_audio_source(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def concat_segments(parts, target, frame_rate: Fraction, codec: str, audio_from: str | None = None) -> int:
    """Join the outputs of several :class:`VideoWriter` s (the segments of one video, in order) into one
    output at ``target``, without re-encoding; return its frame count.

    The parts must have been written with ``codec``, ``frame_rate`` and one size (and, for h264, one
    encoder setting, so that they share their SPS/PPS). For ``"h264"`` (``.mp4``) and ``"ffv1"``
    (``.mkv``) the video packets of the parts are remuxed one after the other, each part's frame ``i``
    getting ``pts = (frames of the parts before it) + i`` in time base ``1 / frame_rate``: the result
    has the summed frame count and exactly ``frame_rate``, and decodes to the frames of the parts (each
    x264 part starts with an IDR frame, each ffv1 part with a keyframe). For ``"png"`` the parts are
    frame folders and ``target`` gets their frames renumbered ``000000.png``, ``000001.png``, ...
    (hard links where the file system allows, copies elsewhere). With ``audio_from``, its first audio
    stream is copied packet for packet, as :class:`VideoWriter` does.

    Atomic like :class:`VideoWriter`: the output is assembled at a hidden temporary name beside
    ``target`` and moved into place only when complete; on any failure nothing is left behind. Raises
    :class:`ValueError` for bad arguments (an unknown codec, a suffix that does not match it, an inexact
    frame rate, no parts) and :class:`VideoError` naming the part that is missing, unreadable, or does
    not match the first one (codec, size, pixel format, frame rate, SPS/PPS) or the frame rate.
    """
    target = Path(target)
    container_format, _ = _check_target(target, codec, audio_from)
    if isinstance(frame_rate, (float, bool)) or not Fraction(frame_rate) > 0:
        raise ValueError(f"frame_rate must be exact and positive (a Fraction or int, e.g. "
                         f"Fraction(30000, 1001)); got {frame_rate!r}")
    frame_rate = Fraction(frame_rate)
    parts = [Path(part) for part in parts]
    if not parts:
        raise ValueError(f"no parts to join into {str(target)!r}")
    tmp = _temporary_path(target)
    try:
        if codec == "png":
            total = _join_frame_folders(parts, tmp)
        else:
            total = _remux_parts(parts, tmp, target, container_format, frame_rate, codec, audio_from)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    return total


def _join_frame_folders(parts: list[Path], tmp: Path) -> int:
    tmp.mkdir()
    shape, total = None, 0
    for part in parts:
        if not part.is_dir():
            raise VideoError(part, "no such png frame folder" if not part.exists() else "not a png frame folder")
        files = _frame_files(part)
        part_shape = _read_png(files[0]).shape
        if shape is None:
            shape = part_shape
        elif part_shape != shape:
            raise VideoError(part, f"frames are {part_shape[1]}x{part_shape[0]}, those of the first part "
                                   f"{parts[0]} are {shape[1]}x{shape[0]}")
        for file in files:
            name = tmp / f"{total:06d}.png"
            try:
                os.link(file, name)
            except OSError:  # another file system, or one without hard links
                shutil.copyfile(file, name)
            total += 1
    return total


@dataclass(frozen=True)
class _Part:
    """What :func:`concat_segments` checks and needs of one part before it writes anything."""

    codec: str
    width: int
    height: int
    pix_fmt: str | None
    extradata: bytes
    frame_rate: Fraction
    origin: int  # the pts of the first frame, in the stream's time base
    delay: int  # how many frames the first dts runs before the first pts (B-frame reordering)


def _inspect_part(path: Path) -> _Part:
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        try:
            first = next((p for p in container.demux(stream) if p.size), None)
        except av.FFmpegError as e:
            raise VideoError(path, f"demux error: {_reason(e)}") from e
        if first is None or first.pts is None:
            raise VideoError(path, "no video packet with a timestamp")
        rate = _frame_rate(stream, path)
        origin = stream.start_time if stream.start_time is not None else first.pts
        dts = first.dts if first.dts is not None else first.pts
        return _Part(cc.name, cc.width, cc.height, cc.format.name if cc.format else None,
                     bytes(cc.extradata or b""), rate, origin,
                     -round((dts - origin) * stream.time_base * rate))


def _remux_parts(parts: list[Path], tmp: Path, target: Path, container_format: str, frame_rate: Fraction,
                 codec: str, audio_from: str | None) -> int:
    # Check every part before writing: a mismatch found halfway would waste the work before it.
    infos = [_inspect_part(part) for part in parts]
    first = infos[0]
    for part, info in zip(parts, infos, strict=True):
        if info.codec != codec:
            raise VideoError(part, f"its video codec is {info.codec!r}, expected {codec!r}")
        if info.frame_rate != frame_rate:
            raise VideoError(part, f"its frame rate is {info.frame_rate}, expected {frame_rate}")
        got, want = (info.width, info.height, info.pix_fmt), (first.width, first.height, first.pix_fmt)
        if got != want:
            raise VideoError(part, f"its video is {got[0]}x{got[1]} {got[2]}, that of the first part "
                                   f"{parts[0]} is {want[0]}x{want[1]} {want[2]}")
        if info.extradata != first.extradata:
            # The decoder reads the codec setup (h264: SPS/PPS) once, from the first part's: a part
            # encoded with other settings would decode wrongly after a remux.
            raise VideoError(part, f"its {codec} stream setup (extradata: SPS/PPS for h264) differs from "
                                   f"that of the first part {parts[0]}; it cannot be joined without "
                                   f"re-encoding")
    # dts runs ``delay`` frames before pts; parts with fewer B-frames (a short part may have none) get
    # their dts moved back to the largest delay, so that dts keeps increasing across the joins.
    delay = max(info.delay for info in infos)
    options = {"movflags": "+faststart"} if codec == "h264" else {}
    out = audio = None
    total, last_dts = 0, None
    try:
        out = av.open(str(tmp), "w", format=container_format, options=options)
        with _open_input(parts[0]) as container:
            video = out.add_stream_from_template(container.streams.video[0])
        video.time_base = video.codec_context.time_base = 1 / frame_rate
        video.codec_context.framerate = frame_rate
        if audio_from is not None:
            audio = _AudioCopy(Path(audio_from), out, codec)
        for part, info in zip(parts, infos, strict=True):
            with _open_input(part) as container:
                stream = _video_stream(container, part)
                to_frames = stream.time_base * frame_rate  # time base ticks -> frames
                count, last_pts = 0, total - 1
                tally = _Tally(1 / frame_rate)
                try:
                    for packet in container.demux(stream):
                        tally.count(packet)
                        if not packet.size:
                            continue
                        if packet.pts is None:
                            raise VideoError(part, f"video packet {count} has no timestamp")
                        pts = total + round((packet.pts - info.origin) * to_frames)
                        dts = packet.dts if packet.dts is not None else packet.pts
                        dts = total + round((dts - info.origin) * to_frames) - (delay - info.delay)
                        if pts < total or dts > pts or (last_dts is not None and dts <= last_dts):
                            raise VideoError(part, f"video packet {count} has pts {packet.pts}, dts "
                                                   f"{packet.dts}: not in order at {frame_rate} frames/s")
                        duration = round(packet.duration * to_frames) if packet.duration else 0
                        packet.pts, packet.dts, packet.duration = pts, dts, duration
                        packet.time_base = 1 / frame_rate  # set last: setting it does not rescale
                        packet.stream = video
                        out.mux(packet)
                        last_dts, last_pts = dts, max(pts, last_pts)
                        count += 1
                        if audio is not None:
                            audio.mux_until(Fraction(dts + 1) / frame_rate)
                except av.FFmpegError as e:
                    raise VideoError(part, f"cannot copy video packet {count}: {_reason(e)}") from e
                if count == 0:
                    raise VideoError(part, "no video packets")
                tally.check(part, *_promised_length(container, stream))
                if last_pts != total + count - 1:  # frames missing, or timestamps at another rate
                    raise VideoError(part, f"its {count} frames have timestamps up to frame "
                                           f"{last_pts - total} at {frame_rate} frames/s")
                total += count
        try:
            if audio is not None:
                audio.mux_until(None)
            out.close()
        except av.FFmpegError as e:
            raise VideoError(target, f"cannot finish writing: {_reason(e)}") from e
        out = None
    finally:
        if audio is not None:
            audio.close()
        if out is not None:
            try:
                out.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # a half-written container may fail to finalise; the caller deletes it
    return total


def _check_target(path: Path, codec: str, audio_from) -> tuple[str | None, str]:
    """Check an output path against ``codec``; return the container format and the pixel format."""
    suffix, container_format, pix_fmt = _CODECS.get(codec, (None, None, None))
    if suffix is None:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(_CODECS)}")
    if codec == "png" and path.suffix.lower() in EXTENSIONS:
        raise ValueError(f"codec 'png' writes a folder of frames, but {str(path)!r} names a video file")
    if suffix and path.suffix.lower() != suffix:
        raise ValueError(f"codec {codec!r} writes {suffix} files; got path {str(path)!r}")
    if codec == "png" and path.is_dir() and any(path.iterdir()):
        raise ValueError(f"output folder {str(path)!r} exists and is not empty")
    if codec == "png" and audio_from is not None:
        raise ValueError(f"a png frame folder cannot hold audio; got audio_from={audio_from!r}")
    return container_format, pix_fmt


def _temporary_path(path: Path) -> Path:
    """A hidden name beside ``path`` to write to before moving the result into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.partial-{secrets.token_hex(4)}"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


class _AudioCopy:
    """Copies the first audio stream of ``source`` into the output container ``out``, packet for packet
    (no re-encoding), interleaved with the video by time. Without an audio stream in ``source`` it copies
    nothing. ``codec`` names the output in the error for an audio codec the container cannot hold."""

    def __init__(self, source: Path, out, codec: str):
        self._source = _open_input(source)
        self._packets = self._pending = None
        if not self._source.streams.audio:
            self.close()
            return
        template = self._source.streams.audio[0]
        try:
            self._stream = out.add_stream_from_template(template)
        except ValueError as e:  # the container cannot hold this audio codec (e.g. pcm in mp4)
            self.close()
            raise VideoError(source, f"cannot copy its audio into {codec}: {e}") from e
        self._out = out
        self._packets = (p for p in self._source.demux(template) if p.size and p.dts is not None)

    def mux_until(self, seconds: Fraction | None) -> None:
        """Mux the source's audio packets that start before ``seconds`` (all the rest for None)."""
        while self._packets is not None:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    self._packets = None
                    return
            packet = self._pending
            start = (packet.pts if packet.pts is not None else packet.dts) * packet.time_base
            if seconds is not None and start >= seconds:
                return
            packet.stream = self._stream
            self._out.mux(packet)
            self._pending = None

    def close(self) -> None:
        self._packets = self._pending = None
        if self._source is not None:
            self._source.close()
            self._source = None


def _open_input(path: Path):
    """``av.open`` for reading, with the failures turned into :class:`VideoError` naming ``path``."""
    if not path.exists():
        raise VideoError(path, "no such file")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as e:
        cause = "cannot open" if isinstance(e, OSError) else "not a video file"
        raise VideoError(path, f"{cause}: {_reason(e)}") from e


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise VideoError(path, "no video stream")
    return container.streams.video[0]


def _frame_rate(stream, path: Path) -> Fraction:
    """The stream's frame rate, exact.

    ``guessed_rate`` is ffmpeg's own choice (``av_guess_frame_rate``) and is the clean rate (30000/1001)
    where ``average_rate`` is skewed by an odd last-frame duration; where the two differ by more than
    1 % the video is variable-rate and ``average_rate`` keeps its duration, hence its sync with the audio.
    """
    guessed, average = stream.guessed_rate, stream.average_rate
    if guessed and (not average or abs(average / guessed - 1) <= Fraction(1, 100)):
        return Fraction(guessed)
    if average:
        return Fraction(average)
    raise VideoError(path, "the container does not give a frame rate")


def _promised_length(container, stream) -> tuple[int | None, Fraction | None]:
    """What the container says the video stream holds, to catch truncated files: a frame count (mp4 and
    mov count their samples) or else the stream's end time in seconds (None where it says neither)."""
    if stream.frames:
        return stream.frames, None
    if stream.duration:
        return None, (stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base
    if "DURATION" in stream.metadata:  # matroska's per-stream tag: the stream's end time, HH:MM:SS.nnnnnnnnn
        try:
            hours, minutes, seconds = stream.metadata["DURATION"].split(":")
            return None, int(hours) * 3600 + int(minutes) * 60 + Fraction(seconds)
        except ValueError:
            return None, None
    if len(container.streams) == 1 and container.duration:  # the container's duration is the video's
        return None, Fraction((container.start_time or 0) + container.duration, av.time_base)
    return None, None


def _to_rgb(frame) -> np.ndarray:
    # PyAV >= 17 converts with swscale's frame API, which reads the frame's colour space and range tags.
    return frame.to_ndarray(format="rgb24")


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    if not files:
        raise VideoError(folder, "folder holds no .png frames")
    return files


def _read_png(path: Path) -> np.ndarray:
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0), None)
    except av.FFmpegError as e:
        raise VideoError(path, f"not a PNG image: {_reason(e)}") from e
    if frame is None:
        raise VideoError(path, "not a PNG image: no picture in it")
    return _to_rgb(frame)


def _reason(error: Exception) -> str:
    """ffmpeg's message without PyAV's errno and repeated file name."""
    return getattr(error, "strerror", None) or str(error)
