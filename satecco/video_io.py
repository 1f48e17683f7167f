"""Streaming video I/O with PyAV: probe, read frame by frame, write atomically.

Frames on this side are ``(H, W, 3)`` uint8 RGB, one at a time; a clip is ``(T, H, W, C)`` (see
:mod:`satecco.layout` for the model side). Rules, after PyAV's own examples rather than torchvision's
reader:

- frame rates are exact :class:`~fractions.Fraction` s (29.97 stays ``30000/1001``), every written frame
  gets an integer ``pts`` in a ``1/frame_rate`` time base, and encoders are flushed;
- nothing decodes a whole file at once: :func:`read_frames` is a generator;
- a decode error, a truncated file or a file with no frames raises :class:`VideoError` naming the file;
- :class:`VideoWriter` writes to a hidden temporary name beside the target and renames it on success,
  so a crash never leaves a half-written video at the final path.

A folder of ``.png`` files (sorted by name, so zero-pad the numbers) is accepted wherever a video is,
at :data:`FOLDER_FRAME_RATE` and without audio.

Colour: h264 output is converted with BT.709 coefficients in limited range and tagged as such, so
players and this reader agree on the colours; decoding honours the colour space and range the file is
tagged with. ``ffv1`` (``bgr0``) and ``png`` (``rgb24``) store RGB losslessly: a round trip is bit-exact.
"""

from __future__ import annotations

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


def read_frames(path) -> Iterator[np.ndarray]:
    """Yield the frames of a video file or PNG frame folder one at a time, each ``(H, W, 3)`` uint8 RGB.

    A generator: the file is opened on the first ``next()`` and only a few frames are in memory at once.
    Raises :class:`VideoError` (naming the file) on a decode error, when the video stops before the
    frame count or duration its container states (a truncated file), and when no frame was decoded.
    Those checks run after the last frame, so a consumer that stops early never sees them.
    """
    path = Path(path)
    if path.is_dir():
        files = _frame_files(path)
        first = None
        for file in files:
            frame = _read_png(file)
            if first is None:
                first = frame.shape
            elif frame.shape != first:
                raise VideoError(file, f"frame is {frame.shape[1]}x{frame.shape[0]}, the first frame of "
                                       f"the folder is {first[1]}x{first[0]}")
            yield frame
        return
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        # Left at PyAV's default (slice) threading on purpose: with frame threading ("AUTO", "FRAME")
        # FFmpeg drops frames it cannot decode without reporting an error.
        promised_frames, promised_end = _promised_length(container, stream)
        rate = stream.guessed_rate or stream.average_rate
        frame_time = 1 / Fraction(rate) if rate else Fraction(0)
        packets = frames = 0
        end = None  # the latest end time of a video packet, in seconds
        try:
            for packet in container.demux(stream):
                packets += packet.size > 0  # the last, empty packet only flushes the decoder
                if packet.size and packet.pts is not None:
                    duration = packet.duration * packet.time_base if packet.duration else frame_time
                    packet_end = packet.pts * packet.time_base + duration
                    end = packet_end if end is None else max(end, packet_end)
                for frame in packet.decode():
                    frames += 1
                    yield _to_rgb(frame)
        except av.FFmpegError as e:
            raise VideoError(path, f"decode error after {frames} frames: {_reason(e)}") from e
    if frames == 0:
        raise VideoError(path, "empty video: no frame could be decoded")
    if promised_frames is not None and packets < promised_frames:
        raise VideoError(path, f"truncated: the container promises {promised_frames} frames, "
                               f"the file holds {packets}")
    if promised_end is not None and end is not None and end < promised_end - frame_time / 2:
        raise VideoError(path, f"truncated: the video stops at {float(end):.3f} s, the container promises "
                               f"{float(promised_end):.3f} s")


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
        suffix, container_format, pix_fmt = _CODECS.get(codec, (None, None, None))
        if suffix is None:
            raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(_CODECS)}")
        self.path = Path(path)
        if codec == "png" and self.path.suffix.lower() in EXTENSIONS:
            raise ValueError(f"codec 'png' writes a folder of frames, but {str(self.path)!r} names a video file")
        if suffix and self.path.suffix.lower() != suffix:
            raise ValueError(f"codec {codec!r} writes {suffix} files; got path {str(self.path)!r}")
        if codec == "png" and self.path.is_dir() and any(self.path.iterdir()):
            raise ValueError(f"output folder {str(self.path)!r} exists and is not empty")
        if codec == "png" and audio_from is not None:
            raise ValueError(f"a png frame folder cannot hold audio; got audio_from={audio_from!r}")
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
        self._out = self._audio_src = self._audio_packets = self._pending_audio = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.parent / f".{self.path.name}.partial-{secrets.token_hex(4)}"
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
                self._add_audio(Path(audio_from))
        except BaseException:
            self.abort()
            raise

    def _add_audio(self, source: Path) -> None:
        self._audio_src = _open_input(source)
        if not self._audio_src.streams.audio:
            self._audio_src.close()
            self._audio_src = None
            return
        template = self._audio_src.streams.audio[0]
        try:
            self._audio_stream = self._out.add_stream_from_template(template)
        except ValueError as e:  # the container cannot hold this audio codec (e.g. pcm in mp4)
            raise VideoError(source, f"cannot copy its audio into {self.codec}: {e}") from e
        self._audio_packets = (p for p in self._audio_src.demux(template) if p.size and p.dts is not None)

    def _mux_audio_until(self, seconds: Fraction | None) -> None:
        """Mux source audio packets that start before ``seconds`` (all of them for None)."""
        while self._audio_packets is not None:
            if self._pending_audio is None:
                self._pending_audio = next(self._audio_packets, None)
                if self._pending_audio is None:
                    self._audio_packets = None
                    return
            packet = self._pending_audio
            start = (packet.pts if packet.pts is not None else packet.dts) * packet.time_base
            if seconds is not None and start >= seconds:
                return
            packet.stream = self._audio_stream
            self._out.mux(packet)
            self._pending_audio = None

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
                self._mux_audio_until((self.frames_written + 1) / self.frame_rate)
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
                    self._mux_audio_until(None)
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
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        elif self._tmp.exists():
            self._tmp.unlink()

    def _close_audio_source(self) -> None:
        if self._audio_src is not None:
            self._audio_src.close()
            self._audio_src = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


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
