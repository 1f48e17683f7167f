"""What the video modules share: suffixes, checking output paths, opening inputs, exact frame rates,
frame folders (PNG, TIFF, JPEG, DPX, EXR), RGB conversion and FFmpeg's error messages."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from satecco.errors import VideoError
from satecco.video.codecs import FRAME_SUFFIXES, get_codec

# Video file suffixes taken as inputs when a folder of inputs is given.
EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".flv",
     ".wmv", ".ogv", ".3gp", ".y4m", ".mxf", ".dv", ".vob", ".m2v"}
)
#: The frame rate of a frame folder given as input, unless ``--fps`` says otherwise.
FOLDER_FRAME_RATE = Fraction(30)
#: EXR frames hold linear light; the decoder turns them into sRGB code values, which the model knows.
EXR_TRANSFER = "iec61966_2_1"


def output_suffix(codec: str) -> str:
    """The suffix of an output of ``codec`` (:data:`~satecco.video.codecs.CODEC_TABLE`): ``.mp4``,
    ``.mkv``, ... or ``""`` (a frame folder)."""
    return get_codec(codec).output_suffix


def check_target(path: Path, codec: str) -> str | None:
    """Check an output path against ``codec``; return the container format (None: a frame folder)."""
    spec = get_codec(codec)
    if spec.frames and path.suffix.lower() in EXTENSIONS:
        raise ValueError(f"codec {codec!r} writes a folder of frames, but {str(path)!r} names a video file")
    if spec.output_suffix and path.suffix.lower() != spec.output_suffix:
        raise ValueError(f"codec {codec!r} writes {spec.output_suffix} files; got path {str(path)!r}")
    if spec.frames and path.is_dir() and any(path.iterdir()):
        raise ValueError(f"output folder {str(path)!r} exists and is not empty")
    return spec.container


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
    """The frame files of a folder (one kind of :data:`~satecco.video.codecs.FRAME_SUFFIXES`; ``.tif``
    and ``.tiff`` are one kind, as are ``.jpg`` and ``.jpeg``), sorted by name; :class:`VideoError`
    where there are none or several kinds."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith("."))
    kinds = sorted({_KIND.get(p.suffix.lower(), p.suffix.lower()) for p in files})
    if not files:
        raise VideoError(folder, f"folder holds no frames ({', '.join(sorted(FRAME_SUFFIXES))})")
    if len(kinds) > 1:
        raise VideoError(folder, f"folder mixes {' and '.join(kinds)} frames; one kind per folder")
    return files


_KIND = {".tiff": ".tif", ".jpeg": ".jpg"}


def decode_image(path: Path):
    """One frame file, decoded (an ``av.VideoFrame``: its format tells the file's depth). EXR's linear
    light comes back as sRGB code values (:data:`EXR_TRANSFER`)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if path.suffix.lower() == ".exr":
                stream.codec_context.options = {"apply_trc": EXR_TRANSFER}
            frame = next(container.decode(stream), None)
    except (av.FFmpegError, IndexError) as e:
        raise VideoError(path, f"not an image: {reason(e)}") from e
    if frame is None:
        raise VideoError(path, "not an image: no picture in it")
    return frame


def read_image(path: Path, bits: int = 8) -> np.ndarray:
    """One frame file as ``(H, W, 3)`` RGB, uint8 for ``bits`` 8, else uint16."""
    return to_rgb(decode_image(path), bits)


def reason(error: Exception) -> str:
    """ffmpeg's message without PyAV's errno and repeated file name."""
    return getattr(error, "strerror", None) or str(error)
