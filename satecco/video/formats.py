"""What the video modules share: suffixes and codecs, checking output paths, opening inputs, exact
frame rates, PNG frame folders, RGB conversion and FFmpeg's error messages."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from satecco.errors import VideoError

# Video file suffixes taken as inputs when a folder of inputs is given.
EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".flv",
     ".wmv", ".ogv", ".3gp", ".y4m", ".mxf", ".dv", ".vob", ".m2v"}
)
FOLDER_FRAME_RATE = Fraction(30)
# codec -> (file suffix, container format, pixel format stored)
_CODECS = {"h264": (".mp4", "mp4", "yuv420p"), "ffv1": (".mkv", "matroska", "bgr0"), "png": ("", None, "rgb24")}
CODECS = tuple(_CODECS)


def output_suffix(codec: str) -> str:
    """The file suffix a :class:`~satecco.video.write.VideoWriter` expects for ``codec``: ``.mp4``,
    ``.mkv``, or ``""`` (a folder)."""
    if codec not in _CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(_CODECS)}")
    return _CODECS[codec][0]


def check_target(path: Path, codec: str) -> tuple[str | None, str]:
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
    return container_format, pix_fmt


def open_input(path: Path):
    """``av.open`` for reading, with the failures turned into :class:`VideoError` naming ``path``."""
    if not path.exists():
        raise VideoError(path, "no such file")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as e:
        cause = "cannot open" if isinstance(e, OSError) else "not a video file"
        raise VideoError(path, f"{cause}: {reason(e)}") from e


def video_stream(container, path: Path):
    """The first video stream of ``container``; :class:`VideoError` naming ``path`` where it has none."""
    if not container.streams.video:
        raise VideoError(path, "no video stream")
    return container.streams.video[0]


def frame_rate_of(stream, path: Path) -> Fraction:
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


def to_rgb(frame, bits: int = 8) -> np.ndarray:
    """A decoded frame as ``(H, W, 3)`` RGB: uint8 for ``bits`` 8, else uint16 (FFmpeg's ``rgb48``)."""
    # PyAV >= 17 converts with swscale's frame API, which reads the frame's colour space and range tags.
    return frame.to_ndarray(format="rgb24" if bits <= 8 else "rgb48le")


def frame_files(folder: Path) -> list[Path]:
    """The ``.png`` frames of a folder, sorted by name; :class:`VideoError` where there are none."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    if not files:
        raise VideoError(folder, "folder holds no .png frames")
    return files


def decode_png(path: Path):
    """One PNG frame, decoded (an ``av.VideoFrame``: its format tells the file's depth)."""
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0), None)
    except av.FFmpegError as e:
        raise VideoError(path, f"not a PNG image: {reason(e)}") from e
    if frame is None:
        raise VideoError(path, "not a PNG image: no picture in it")
    return frame


def read_png(path: Path, bits: int = 8) -> np.ndarray:
    """One PNG frame as ``(H, W, 3)`` RGB, uint8 for ``bits`` 8, else uint16."""
    return to_rgb(decode_png(path), bits)


def reason(error: Exception) -> str:
    """ffmpeg's message without PyAV's errno and repeated file name."""
    return getattr(error, "strerror", None) or str(error)
