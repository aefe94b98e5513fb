"""What a file holds and where its video ends, without decoding: FFmpeg's view of a file by its content
(a name can mislead it), the sample aspect ratio, and the end of the last frame from the last packets.

    is_video("VTS_01_1.vob")                     # True: a container with a real video stream
    packets_end(path, size, mtime_ns, "mov", 0, hint, 3600)   # (end, last pts, packets) in stream ticks
"""
from __future__ import annotations

import functools
import io
import os
import stat
from pathlib import Path

import av

IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe",
                 "ppm_pipe", "pgm_pipe", "qoi_pipe", "svg_pipe", "jpegxl_pipe", "j2k_pipe"}
_PROBE_BYTES = 1 << 21    # bytes read to tell a misnamed video by its content
_TAIL_S = 10.0            # seconds before the end a header promises from which the last packets are read


def sample_aspect(stream) -> float:
    """The stream's sample aspect ratio (container first, then the bitstream, as FFmpeg guesses it);
    1 when unset or absurd."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar and sar.numerator > 0:
            return float(sar) if 0.1 < sar < 10 else 1.0
    return 1.0


@functools.lru_cache(maxsize=256)
def packets_end(path: str, size: int, mtime_ns: int, fmt: str, index: int, hint: int | None,
                 frame_ticks: int) -> tuple[int | None, int | None, int | None]:
    """(end, last pts, packets) of stream `index` of the `fmt` file at `path`, in the stream's ticks: end = the
    largest pts + that packet's duration (`frame_ticks` when it has none; with B-frames, decode order does
    not end in pts order). Demuxes from `_TAIL_S` before the `hint` end (then `packets` is None), or the
    whole file when there is no hint or the tail holds nothing. Keyed by the file's size and mtime, so
    one file is read once per process."""
    for tail in (True, False):
        with av.open(path, format=fmt, metadata_errors="ignore") as c:
            s = c.streams[index]
            if tail:
                target = hint - int(_TAIL_S / s.time_base) if hint is not None else None
                if target is None or target <= (s.start_time or 0):
                    continue              # a short file or no hint: read it all (that also counts the packets)
                try:
                    c.seek(target, backward=True, any_frame=False, stream=s)
                except av.FFmpegError:
                    continue
            end = last = None
            n = 0
            try:
                for p in c.demux(s):
                    t = p.pts if p.pts is not None else p.dts
                    if t is None:
                        continue          # the flush packet at the end
                    n += 1
                    if last is None or t > last:   # the last frame shown, and how long it is shown
                        last, end = t, t + (p.duration or frame_ticks)
            except av.FFmpegError:
                pass                      # a damaged or cut-off tail: the end is where readable packets stop
            if end is not None:
                return end, last, None if tail else n
    return None, None, None


def is_image_format(name: str) -> bool:
    return name in IMAGE_FORMATS or name.endswith("_pipe") or name == "tty"


def open_by_content(path: Path):
    """`av.open`, by content: FFmpeg trusts an image-like name (a video called movie.jpg opens as image2),
    so a file that opens as an image is probed again without its name."""
    c = av.open(str(path), metadata_errors="ignore")
    if not is_image_format(c.format.name):
        return c
    with open(path, "rb") as f:
        head = io.BytesIO(f.read(_PROBE_BYTES))         # no name to go by: FFmpeg looks at the bytes only
    try:
        with av.open(head, metadata_errors="ignore") as by_content:
            name = by_content.format.name.split(",")[0]
    except av.FFmpegError:
        return c
    if is_image_format(name):
        return c
    c.close()
    return av.open(str(path), format=name, metadata_errors="ignore")


def file_kind(mode: int) -> str:
    return ("a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a plain file")


def is_video(path: str | os.PathLike) -> bool:
    """Whether FFmpeg reads `path` as a container with a real video stream (the header only, nothing decoded):
    images, audio (with or without cover art), subtitles and text are not videos."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open_by_content(Path(path)) as c:
            if is_image_format(c.format.name):
                return False
            return any(not s.disposition & av.stream.Disposition.attached_pic and s.codec_context.name != "ansi"
                       for s in c.streams.video)
    except (av.FFmpegError, OSError, ValueError):
        return False
