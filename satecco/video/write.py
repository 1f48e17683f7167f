"""Writing: :class:`VideoWriter` encodes frames to a file or PNG folder atomically, and
:class:`AudioCopy` copies a source's audio into an output packet for packet."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from satecco.errors import VideoError
from satecco.storage import atomic_output
from satecco.video.formats import check_target, open_input, reason


class VideoWriter:
    """Encode ``(H, W, 3)`` uint8 RGB frames to ``path``; a context manager.

    Codecs: ``"h264"`` (``.mp4``, libx264 at ``crf``, yuv420p, or yuv444p when width or height is odd
    since 4:2:0 needs even sizes; yuv444p plays in ffmpeg-based players but not in most browsers),
    ``"ffv1"`` (``.mkv``, lossless bgr0, bit-exact RGB round trip; version 3 with slice CRCs, the archival
    setting, though FFmpeg's decoder only logs a CRC mismatch) and ``"png"`` (a folder of ``000000.png``, ``000001.png``, ...).

    Frame ``i`` gets ``pts = i`` in time base ``1 / frame_rate``, so the output has exactly the frame rate
    and frame count it was given. With ``audio_from``, the first audio stream of that file (if it has one)
    is copied packet for packet, not re-encoded, interleaved with the video as it is written.

    Nothing appears at ``path`` until :meth:`close` succeeds: the output is written to a hidden partial
    file (or folder) in the same folder and moved into place with :func:`os.replace` (see
    :func:`satecco.storage.atomic_output`). An exception inside the ``with`` block, or :meth:`abort`,
    deletes it.
    """

    def __init__(self, path, width: int, height: int, frame_rate: Fraction, codec: str = "h264",
                 crf: int = 18, audio_from: str | None = None):
        self.path = Path(path)
        container_format, pix_fmt = check_target(self.path, codec, audio_from)
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
        self._atomic = contextlib.ExitStack()  # closing it moves the partial output to ``path``
        self._tmp = self._atomic.enter_context(atomic_output(self.path))
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
                self._audio = AudioCopy(Path(audio_from), self._out, codec)
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
            raise VideoError(self.path, f"encode error at frame {self.frames_written}: {reason(e)}") from e
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio, and move the finished output to ``path``."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise VideoError(self.path, "no frames were written; nothing saved")
            if self._out is not None:
                finish_output(self._out, self.path, self._audio, self._encoder)
                self._out = None
            self._atomic.close()
        except BaseException:
            self.abort()
            raise
        self._close_audio_source()
        self._closed = True

    def abort(self) -> None:
        """Stop writing and delete the partial output; ``path`` is left untouched."""
        self._closed = True
        if self._out is not None:
            discard_output(self._out)
            self._out = None
        self._close_audio_source()
        with contextlib.suppress(_Aborted), self._atomic:
            raise _Aborted  # atomic_output deletes the partial output when its block ends in an exception

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


class _Aborted(Exception):
    """Raised in the atomic output's block by :meth:`VideoWriter.abort`: it deletes the partial output."""


class AudioCopy:
    """Copies the first audio stream of ``source`` into the output container ``out``, packet for packet
    (no re-encoding), interleaved with the video by time. Without an audio stream in ``source`` it copies
    nothing. ``codec`` names the output in the error for an audio codec the container cannot hold."""

    def __init__(self, source: Path, out, codec: str):
        self._source = open_input(source)
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


def finish_output(out, path: Path, audio: AudioCopy | None = None, encoder=None) -> None:
    """Flush ``encoder`` into the output container ``out``, copy the rest of ``audio``, and close ``out``;
    an FFmpeg failure raises :class:`VideoError` naming ``path``."""
    try:
        if encoder is not None:
            out.mux(encoder.encode(None))
        if audio is not None:
            audio.mux_until(None)
        out.close()
    except av.FFmpegError as e:
        raise VideoError(path, f"cannot finish writing: {reason(e)}") from e


def discard_output(out) -> None:
    """Close a half-written output container that is about to be deleted."""
    try:
        out.close()
    except (av.FFmpegError, OSError, ValueError):
        pass  # a half-written container may fail to finalise; it is deleted next anyway
