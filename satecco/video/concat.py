"""Joining: :func:`concat_segments` puts the outputs of several writers (the segments of one video) end
to end without re-encoding: frame folders by renumbering their files, videos by remuxing their packets."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from satecco.errors import VideoError
from satecco.storage import atomic_output
from satecco.video.codecs import get_codec
from satecco.video.formats import (
    check_target,
    frame_files,
    frame_rate_of,
    open_input,
    read_image,
    reason,
    video_stream,
)
from satecco.video.read import Tally, probe, promised_length
from satecco.video.streams import Carried, Timing, frame_times, kept_metadata, plan_streams
from satecco.video.write import discard_output, finish_output


def concat_segments(parts, target, frame_rate: Fraction, codec: str, source: str | None = None,
                    excerpt: tuple[int, int] | None = None) -> int:
    """Join the outputs of several :class:`~satecco.video.write.VideoWriter` s (the segments of one
    video, in order) into one output at ``target``, without re-encoding; return its frame count.

    The parts must have been written with ``codec``, ``frame_rate`` and one size (and, for h264, one
    encoder setting, so that they share their SPS/PPS). For ``"h264"`` (``.mp4``) and ``"ffv1"``
    (``.mkv``) the video packets of the parts are remuxed one after the other, each part's frame ``i``
    getting ``pts = (frames of the parts before it) + i`` in time base ``1 / frame_rate``: the result
    has the summed frame count and exactly ``frame_rate``, and decodes to the frames of the parts (each
    x264 part starts with an IDR frame, each ffv1 part with a keyframe; every codec of
    :mod:`satecco.video.codecs` starts a stream with one). For the frame codecs (png, tiff, jpeg, dpx)
    the parts are frame folders and ``target`` gets their frames renumbered ``000000.png``, ...
    (hard links where the file system allows, copies elsewhere).

    With ``source`` (the video the parts were made from), the output gets what it carries besides
    pictures (:mod:`satecco.video.streams`): its other streams as :func:`~satecco.video.streams.plan_streams`
    decides (a stream that would be lost raises :class:`VideoError` naming ``source``), its metadata and
    chapters, the video stream's metadata, sample aspect ratio and display matrix, and, where it gives
    one per frame, each frame's own timestamp instead of ``i / frame_rate``. ``excerpt``: the parts hold
    the source's frames ``[first, stop)`` only; what it carries is cut to their time span and starts at 0.

    Atomic like :class:`~satecco.video.write.VideoWriter` (:func:`satecco.storage.atomic_output`): the
    output is assembled at a hidden temporary name beside ``target`` and moved into place only when
    complete; on any failure nothing is left behind. Raises
    :class:`ValueError` for bad arguments (an unknown codec, a suffix that does not match it, an inexact
    frame rate, no parts) and :class:`VideoError` naming the part that is missing, unreadable, or does
    not match the first one (codec, size, pixel format, frame rate, SPS/PPS) or the frame rate.
    """
    target = Path(target)
    container_format = check_target(target, codec)
    if isinstance(frame_rate, (float, bool)) or not Fraction(frame_rate) > 0:
        raise ValueError(f"frame_rate must be exact and positive (a Fraction or int, e.g. "
                         f"Fraction(30000, 1001)); got {frame_rate!r}")
    frame_rate = Fraction(frame_rate)
    parts = [Path(part) for part in parts]
    if not parts:
        raise ValueError(f"no parts to join into {str(target)!r}")
    with atomic_output(target) as tmp:
        if container_format is None:
            return _join_frame_folders(parts, tmp)
        return _remux_parts(parts, tmp, target, container_format, frame_rate, codec, source, excerpt)


def _join_frame_folders(parts: list[Path], tmp: Path) -> int:
    tmp.mkdir()
    shape, total = None, 0
    for part in parts:
        if not part.is_dir():
            raise VideoError(part, "no such frame folder" if not part.exists() else "not a frame folder")
        files = frame_files(part)
        part_shape = read_image(files[0]).shape
        if shape is None:
            shape = part_shape
        elif part_shape != shape:
            raise VideoError(part, f"frames are {part_shape[1]}x{part_shape[0]}, those of the first part "
                                   f"{parts[0]} are {shape[1]}x{shape[0]}")
        for file in files:
            name = tmp / f"{total:06d}{file.suffix}"
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
    with open_input(path) as container:
        stream = video_stream(container, path)
        cc = stream.codec_context
        try:
            first = next((p for p in container.demux(stream) if p.size), None)
        except av.FFmpegError as e:
            raise VideoError(path, f"demux error: {reason(e)}") from e
        if first is None or first.pts is None:
            raise VideoError(path, "no video packet with a timestamp")
        rate = frame_rate_of(stream, path)
        origin = stream.start_time if stream.start_time is not None else first.pts
        dts = first.dts if first.dts is not None else first.pts
        return _Part(cc.name, cc.width, cc.height, cc.format.name if cc.format else None,
                     bytes(cc.extradata or b""), rate, origin,
                     -round((dts - origin) * stream.time_base * rate))


def _check_parts(parts: list[Path], infos: list[_Part], codec: str, frame_rate: Fraction) -> None:
    """Raise :class:`VideoError` naming the first part that does not match ``codec``, ``frame_rate`` or
    the first part (size, pixel format, codec setup)."""
    first = infos[0]
    for part, info in zip(parts, infos, strict=True):
        if info.codec not in get_codec(codec).decoders:
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


def _remux_parts(parts: list[Path], tmp: Path, target: Path, container_format: str, frame_rate: Fraction,
                 codec: str, source: str | None, excerpt: tuple[int, int] | None = None) -> int:
    """Remux the video packets of ``parts`` one after the other into a new file ``tmp`` (with what
    ``source`` carries); return the frame count. ``target`` is the name errors about the output give."""
    # Check every part before writing: a mismatch found halfway would waste the work before it.
    infos = [_inspect_part(part) for part in parts]
    _check_parts(parts, infos, codec, frame_rate)
    # dts runs ``delay`` frames before pts; parts with fewer B-frames (a short part may have none) get
    # their dts moved back to the largest delay, so that dts keeps increasing across the joins.
    delay = max(info.delay for info in infos)
    options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
    out = carried = original = None
    try:
        out = av.open(str(tmp), "w", format=container_format, options=options)
        with open_input(parts[0]) as container:
            video = _output_video(out, container.streams.video[0], codec)
        timing = Timing(frame_rate)
        if source is not None and not Path(source).is_dir():  # a frame folder carries nothing more
            original = open_input(Path(source))
            timing, carried = _carry(original, out, video, codec, source, frame_rate, excerpt)
        video.time_base = timing.time_base
        if video.codec_context is not None:
            video.codec_context.time_base, video.codec_context.framerate = timing.time_base, frame_rate
        remux = _Remux(out, video, frame_rate, delay, carried, timing)
        for part, info in zip(parts, infos, strict=True):
            remux.copy(part, info)
        finish_output(out, target, carried)
        out = None
    finally:
        if original is not None:
            original.close()
        if out is not None:
            discard_output(out)  # the caller deletes it
    return remux.total


def _output_video(out, template, codec: str):
    """The output's video stream, for the packets of ``template``'s: a copy of its setup, or, where it
    was read by a decoder-only library (AV1: libdav1d) that PyAV cannot copy from, a bare stream whose
    setup the muxer takes from the packets."""
    try:
        video = out.add_stream_from_template(template)
    except av.codec.codec.UnknownCodecError:
        cc = template.codec_context
        video = out.add_mux_stream(cc.codec.canonical_name, width=cc.width, height=cc.height)
    video.codec_tag = get_codec(codec).tag or template.codec_tag  # ProRes: the tag names the profile
    return video


def _carry(original, out, video, codec: str, source: str, frame_rate: Fraction,
           excerpt: tuple[int, int] | None = None) -> tuple[Timing, Carried]:
    """Give the output's ``video`` stream what ``original``'s video stream carries (tags, disposition,
    sample aspect ratio, display matrix), and add its other streams; returns the frames' timing and the
    carried streams. A source without video (an audio track to join) gives its streams only; an
    ``excerpt`` gets the times of its frames, from 0, and the streams' packets of its time span."""
    try:
        plans = plan_streams(original, codec)
    except ValueError as error:
        raise VideoError(Path(source), str(error)) from error
    if not original.streams.video:
        return Timing(frame_rate), Carried(original, out, plans)
    stream = original.streams.video[0]
    video.metadata.update(kept_metadata(stream.metadata))
    video.disposition = stream.disposition
    picture = probe(source).picture  # its own reads: ``original`` is left at the start for Carried
    if picture.sar:
        video.sample_aspect_ratio = picture.sar
    if picture.display_matrix:
        video.set_display_matrix(list(picture.display_matrix))
    with open_input(Path(source)) as again:
        times = frame_times(again)
    if excerpt is None:
        return Timing(frame_rate, times, stream.time_base), Carried(original, out, plans)
    first, stop = excerpt
    start = times[first] * stream.time_base if times else Fraction(first) / frame_rate
    timing = Timing(frame_rate, [t - times[first] for t in times[first:stop]] if times else None, stream.time_base)
    return timing, Carried(original, out, plans, (start, start + timing.seconds(stop - first)))


class _Remux:
    """The parts' video packets, retimed one part after the other into the output container ``out``
    (stream ``video``; frame ``i`` at ``timing.at(i)``), with the ``carried`` streams interleaved."""

    def __init__(self, out, video, frame_rate: Fraction, delay: int, carried: Carried | None, timing: Timing):
        self.out, self.video, self.frame_rate, self.delay = out, video, frame_rate, delay
        self.carried, self.timing = carried, timing
        self.total = 0  # the frames of the parts copied so far
        self.last_dts = None  # the dts of the last packet muxed, in frames

    def copy(self, part: Path, info: _Part) -> None:
        """Mux the video packets of ``part`` after those copied so far."""
        with open_input(part) as container:
            stream = video_stream(container, part)
            count, last_pts = 0, self.total - 1
            tally = Tally(1 / self.frame_rate)
            try:
                for packet in container.demux(stream):
                    tally.count(packet)
                    if not packet.size:
                        continue
                    last_pts = max(self._mux(packet, part, info, count, stream.time_base), last_pts)
                    count += 1
                    if self.carried is not None:
                        self.carried.mux_until(self.timing.seconds(self.last_dts + 1))
            except av.FFmpegError as e:
                raise VideoError(part, f"cannot copy video packet {count}: {reason(e)}") from e
            if count == 0:
                raise VideoError(part, "no video packets")
            tally.check(part, *promised_length(container, stream))
            if last_pts != self.total + count - 1:  # frames missing, or timestamps at another rate
                raise VideoError(part, f"its {count} frames have timestamps up to frame "
                                       f"{last_pts - self.total} at {self.frame_rate} frames/s")
            self.total += count

    def _mux(self, packet, part: Path, info: _Part, count: int, time_base: Fraction) -> int:
        """Retime video packet ``count`` of ``part`` to frames of the output and mux it; return its pts."""
        if packet.pts is None:
            raise VideoError(part, f"video packet {count} has no timestamp")
        to_frames = time_base * self.frame_rate  # time base ticks -> frames
        pts = self.total + round((packet.pts - info.origin) * to_frames)
        dts = packet.dts if packet.dts is not None else packet.pts
        dts = self.total + round((dts - info.origin) * to_frames) - (self.delay - info.delay)
        if pts < self.total or dts > pts or (self.last_dts is not None and dts <= self.last_dts):
            raise VideoError(part, f"video packet {count} has pts {packet.pts}, dts "
                                   f"{packet.dts}: not in order at {self.frame_rate} frames/s")
        at = self.timing.at
        packet.pts, packet.dts, packet.duration = at(pts), at(dts), at(pts + 1) - at(pts)
        packet.time_base = self.timing.time_base  # set last: setting it does not rescale
        packet.stream = self.video
        self.out.mux(packet)
        self.last_dts = dts
        return pts
