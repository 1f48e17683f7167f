"""Real test videos made with PyAV (shared by the test modules)."""

from fractions import Fraction

import av
import numpy as np

from satecco.cluster import free_port  # noqa: F401  (the tests' loopback ports)
from satecco.video.write import VideoWriter

NTSC = Fraction(30000, 1001)


def random_frames(n=12, height=48, width=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def write(path, frames, codec, frame_rate=NTSC, **kwargs):
    height, width, _ = frames[0].shape
    with VideoWriter(path, width, height, frame_rate, codec=codec, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def moving_frames(n=12, height=48, width=64):
    """Smooth colour ramps that drift from frame to frame: unlike noise, x264 codes them with B-frames."""
    y, x = np.mgrid[0:height, 0:width]
    return [np.stack([x * 8 + i * 3, y * 8 + i * 5, (x + y) * 4 + i * 7], axis=-1).astype(np.uint8)
            for i in range(n)]


def plain_pyav_mp4(path, n=20, height=48, width=64, audio=False, gop=None, frames=None):
    """An h264 mp4 written by PyAV directly (index at the end, as most encoders leave it), optionally
    with an AAC track that runs as long as the video. ``gop`` sets x264's keyframe interval (default
    250); ``frames`` replaces the ``n`` random frames; another suffix (``.ts``, ``.avi``) gets that
    container instead."""
    frames = random_frames(n, height, width, seed=1) if frames is None else frames
    n, (height, width, _) = len(frames), frames[0].shape
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=NTSC, options={} if gop is None else {"g": str(gop)})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000) if audio else None
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if sound is not None:
            samples, step = int(n / NTSC * 48000), 1024
            for start in range(0, samples, step):
                t = np.arange(start, start + step) / 48000
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 48000, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def audio_packets(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return stream.codec_context.name, [bytes(p) for p in container.demux(stream) if p.size]


def textured_frames(n=12, size=64):
    """Drifting gratings: detail that bicubic x4 loses and a network can learn to restore."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = []
    for i in range(n):
        u, v = x + 1.5 * i, y + 0.5 * i
        base = 0.5 + 0.25 * np.sin(u / 2.1) * np.cos(v / 3.3) + 0.2 * np.sin((u + v) / 1.7)
        frames.append((np.stack([base, base ** 2, 1 - base], axis=-1).clip(0, 1) * 255).astype(np.uint8))
    return frames


def _tone(out, stream, seconds, rate=8000):
    """``seconds`` of a quiet tone on the mono or stereo audio ``stream``."""
    channels = stream.codec_context.channels
    t = np.arange(int(seconds * rate)) / rate
    samples = (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    step = rate // 50  # 20 ms per frame, as audio codecs packetise
    for start in range(0, len(samples), step):
        part = samples[start:start + step]
        frame = av.AudioFrame.from_ndarray(np.tile(part, (1, channels)) if channels > 1 else part[None],
                                           format="s16", layout="stereo" if channels > 1 else "mono")
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def archive_mkv(path, n=12, height=32, width=48, sar=None, rotation=None, times_ms=None, pix_fmt="yuv420p",
                codec="libx264", colour=None, interlaced=False, frames=None):
    """A Matroska file as archives hold them, made with PyAV: ``n`` drifting frames (``times_ms``: their
    timestamps, for variable timing; default 25 fps), a sample aspect ratio, a display rotation, two
    audio tracks (PCM "eng" "Main", FLAC "fra" "Commentary"), a SubRip track ("deu"), two chapters, a
    title and a comment. ``colour``: (primaries, transfer, matrix, range) tags; ``interlaced``: x264
    codes fields, top first; ``frames``: the pictures, uint8 RGB (default: drifting ramps)."""
    times_ms = times_ms or [40 * i for i in range(n)]
    with av.open(str(path), "w", format="matroska") as out:
        out.metadata.update({"title": "Reel 7", "comment": "digitised 1998"})
        options = {"x264-params": "interlaced=1:tff=1"} if interlaced else {}
        video = out.add_stream(codec, rate=25, options=options)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = Fraction(1, 1000)
        video.time_base = Fraction(1, 1000)
        if sar:
            video.codec_context.sample_aspect_ratio = sar
        if rotation is not None:
            video.set_display_rotation(rotation)
        if colour:
            cc = video.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = colour
        main = out.add_stream("pcm_s16le", rate=8000, layout="stereo")
        commentary = out.add_stream("flac", rate=8000, layout="mono")
        for track, language, title in ((main, "eng", "Main"), (commentary, "fra", "Commentary")):
            track.metadata.update({"language": language, "title": title})
        subtitles = out.add_mux_stream("subrip")
        subtitles.metadata["language"] = "deu"
        subtitles.time_base = Fraction(1, 1000)
        out.set_chapters([{"id": 1, "start": 0, "end": times_ms[n // 2], "time_base": Fraction(1, 1000),
                           "metadata": {"title": "Opening"}},
                          {"id": 2, "start": times_ms[n // 2], "end": times_ms[-1] + 40,
                           "time_base": Fraction(1, 1000), "metadata": {"title": "Street"}}])
        deep = "10" in pix_fmt or "12" in pix_fmt
        frames = moving_frames(n, height, width) if frames is None else frames
        for i, (frame, ms) in enumerate(zip(frames, times_ms, strict=True)):
            picture = av.VideoFrame.from_ndarray(frame.astype(np.uint16) * 257 if deep else frame,
                                                 format="rgb48le" if deep else "rgb24")
            picture.pts = ms
            out.mux(video.encode(picture))
            if i in (1, n // 2):
                cue = av.Packet(f"Line {i}".encode())
                cue.pts = cue.dts = ms
                cue.duration, cue.time_base, cue.stream = 200, Fraction(1, 1000), subtitles
                out.mux(cue)
        out.mux(video.encode(None))
        for track in (main, commentary):
            _tone(out, track, (times_ms[-1] + 40) / 1000)
    return path
