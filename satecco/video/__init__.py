"""Streaming video I/O with PyAV: probe, read frame by frame, write atomically, join segments.

Frames on this side are ``(H, W, 3)`` RGB, one at a time, uint8 (uint16 for sources deeper than 8
bits: :mod:`satecco.video.picture`); a clip is ``(T, H, W, C)`` (see :mod:`satecco.layout` for the
model side). Rules, after PyAV's own examples rather than torchvision's
reader:

- frame rates are exact :class:`~fractions.Fraction` s (29.97 stays ``30000/1001``), every written frame
  gets an integer ``pts`` in a ``1/frame_rate`` time base, and encoders are flushed;
- nothing decodes a whole file at once: :func:`satecco.video.read.read_frames` is a generator, and
  reads a range of frames by seeking to the keyframe before it rather than decoding from the start;
- a decode error, a truncated file or a file with no frames raises :class:`~satecco.errors.VideoError`
  naming the file;
- :class:`satecco.video.write.VideoWriter` writes to a hidden temporary name beside the target and
  renames it on success (:func:`satecco.storage.atomic_output`), so a crash never leaves a half-written
  video at the final path; :func:`satecco.video.concat.concat_segments` joins the outputs of several
  writers (the segments of one video) the same way, without re-encoding.

A folder of ``.png`` files (sorted by name, so zero-pad the numbers) is accepted wherever a video is,
at :data:`satecco.video.formats.FOLDER_FRAME_RATE` and without audio.

Colour: h264 output is converted with the source's matrix and range (BT.709 limited range for untagged
sources) and tagged with the source's tags, so players and this reader agree on the colours; decoding
honours the colour space and range the file is tagged with. ``ffv1`` (``bgr0``, ``gbrp10le``…) and
``png`` (``rgb24``, ``rgb48be``) store RGB losslessly: a round trip is bit-exact at their depth.

What a source carries besides pictures (streams, chapters, metadata, SAR, rotation, timestamps) joins
its output when the parts are joined: :mod:`satecco.video.streams`, :mod:`satecco.video.concat`.

Modules (nothing is re-exported here; import from them):

- :mod:`satecco.video.formats`: suffixes and codecs, output checks, opening inputs, exact frame rates,
  PNG frame folders;
- :mod:`satecco.video.read`: :func:`~satecco.video.read.probe`,
  :func:`~satecco.video.read.count_frames`, :func:`~satecco.video.read.read_frames`, and the
  truncation check that joining reuses;
- :mod:`satecco.video.picture`: bit depth, colour tags, SAR, display matrix, interlacing, and the
  :class:`~satecco.video.picture.Encoding` an output keeps them in;
- :mod:`satecco.video.write`: :class:`~satecco.video.write.VideoWriter`;
- :mod:`satecco.video.streams`: what becomes of each non-video stream, and carrying it;
- :mod:`satecco.video.concat`: :func:`~satecco.video.concat.concat_segments`.
"""
