"""One open video stream (PyAV): validated on opening, probed, decoded forward, seeked on request.

    info = probe("clip.mp4")          # duration, fps, size as displayed, codec, first frame's time

The timeline runs from the first frame's pts to the end of the last frame (its pts + its duration),
found from the last packets (demuxed, not decoded; the whole file when the header has no duration, as
in browser recordings), never from the header, which phones and muxers get wrong; it is found once per
file and remembered. Frames are shown at their display size: the sample aspect ratio is applied (a
480x360 SAR 4:3 file is 640x360), then the rotation. Unreadable files raise `ClipPrefixError` naming
the file and the reason: missing, not a regular file, empty, a folder, an image, audio only, encrypted,
no decodable frames, corrupt or truncated (also mid-stream), broken index.
"""
from __future__ import annotations

import itertools
import stat
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..base.errors import ClipPrefixError
from .probe import file_kind, is_image_format, open_by_content, packets_end, sample_aspect

# names a video usually has (dataset folders; the apps decide by content, `is_video`)
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp",
              ".vob", ".m2ts", ".mts", ".ogv", ".mxf", ".m2v", ".3g2", ".f4v", ".asf", ".divx", ".y4m"}
_NO_INDEX_SEEK_S = 20.0   # without a keyframe index, seek only over gaps longer than this (seconds)
_LOOKAHEAD = 8            # packets demuxed ahead of the decoder: covers B-frame reordering
_THREADS = "SLICE"        # decoder threading; frame threads measured slower here, and extract runs one decoder per worker


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    duration: float      # seconds, from the first frame's pts to the end of the last frame
    fps: float           # average frame rate
    frame_count: int     # from the container header, else duration * fps (an estimate)
    width: int           # as displayed: sample aspect ratio applied, then rotation
    height: int
    rotation: int        # degrees the stored frames are turned clockwise for display (0/90/180/270)
    codec: str
    start: float         # pts of the first frame, seconds (0 for most mp4; 1.4 s or an hour into an MPEG-TS);
                         # players and subtitles count from here
    sar: float = 1.0     # sample (pixel) aspect ratio: stored width x sar = displayed width

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class Frame:
    image: np.ndarray                      # HxWx3 uint8 RGB, upright
    time: float                            # presentation time, seconds (pts * time_base)
    target: float | None = None            # the time that was asked for
    span: tuple[float, float] | None = None  # the slot this frame stands for (segment, step or scene)


class VideoReader:
    """An open video stream, validated; decodes forward and seeks on request."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._reformatter = av.video.reformatter.VideoReformatter()
        p = self.path
        try:
            st = p.stat()
        except FileNotFoundError:
            raise ClipPrefixError(f"Video {p} does not exist.") from None
        if stat.S_ISDIR(st.st_mode):
            raise ClipPrefixError(f"Video {p} is a folder, not a file.")
        if not stat.S_ISREG(st.st_mode):   # a named pipe would block the open until something writes to it
            raise ClipPrefixError(f"Video {p} is not a regular file ({file_kind(st.st_mode)}).")
        if st.st_size == 0:
            raise ClipPrefixError(f"Video {p} is empty (0 bytes).")
        self._identity = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        try:
            self.container = open_by_content(p)
        except av.FFmpegError as e:
            raise ClipPrefixError(f"Video {p} cannot be opened: it is corrupt, truncated or not a video ({_msg(e)}).") from e
        c = self.container
        try:
            if is_image_format(c.format.name):
                raise ClipPrefixError(f"Video {p} is an image ({c.format.name.removesuffix('_pipe')}), not a video.")
            if not c.streams.video:
                kinds = sorted({s.type for s in c.streams})
                what = "audio only" if kinds == ["audio"] else ("no streams" if not kinds else "only " + "/".join(kinds))
                raise ClipPrefixError(f"Video {p} has no video stream ({what}).")
            self.stream = s = c.streams.video[0]
            s.thread_type = _THREADS
            self.tb = s.time_base or Fraction(1, 90000)
            self.codec = s.codec_context.name
            self._head: list = []    # frames decoded while probing, handed out first
            self.damaged: set[int] = set()   # pts of frames decoded from a damaged stretch
            self.want: int | None = None      # pts of the frame being looked for (None: every frame)
            self._checked = False             # the first packet was checked for encryption
            self._it = self._decode()
            for _ in range(2):       # two frames: proves the stream decodes (one is a valid one-frame video)
                f = next(self._it, None)
                if f is None:
                    break
                self._head.append(f)
            if not self._head:
                raise ClipPrefixError(f"Video {p} has no decodable frames (corrupt or truncated).")
            first = self._head[0]
            self.coded_size = (first.width, first.height)
            self.sar = sample_aspect(s)
            self.rotation = (-int(round(first.rotation or 0))) % 360  # PyAV: counter-clockwise; ours: clockwise
            self.start_pts = first.pts if first.pts is not None else 0
            self.start = float(self.start_pts * self.tb)
            self.fps = float(s.average_rate or s.guessed_rate or s.base_rate or 0)
            if not self.fps and len(self._head) == 2 and self._head[1].pts is not None:
                self.fps = 1.0 / max(1e-6, float((self._head[1].pts - self._head[0].pts) * self.tb))
            self.duration = self._duration()
            self.keys = self._keyframe_pts()
        except BaseException:
            c.close()
            raise

    # -- stream facts
    def _duration(self) -> float:
        """Seconds from the first frame to the end of the last, from the packets; the header's duration is
        only a hint where to look, and the check that the file is not cut off."""
        s, c, tb = self.stream, self.container, self.tb
        # how far before the promised end the frames may stop: the video track's own duration is exact;
        # a container duration also covers audio, which may run on a little (mkv, webm)
        self.slack = 0.25
        promised = None                           # the end the header promises, seconds
        if s.duration:
            promised = float(((s.start_time or 0) + s.duration) * tb)
        elif c.duration:
            promised = ((c.start_time or 0) + c.duration) / 1_000_000
            self.slack = 2.0 + 0.05 * max(0.0, promised - self.start)
        frame_ticks = max(1, round(1 / (self.fps * tb))) if self.fps else 0
        hint = int(promised / tb) if promised is not None else None
        fmt = c.format.name.split(",")[0]      # as opened (by content, whatever the name says)
        end, last, self.packets = packets_end(*self._identity, fmt, s.index, hint, frame_ticks)
        if end is None or not end > self.start_pts:
            raise ClipPrefixError(f"Video {self.path} has no known duration (a raw or broken stream); remux it to mp4.")
        if promised is not None and float(end * tb) < promised - self.slack - 2 * frame_ticks * float(tb):
            # the packets stop well before the end the header promises: a cut-off file
            raise ClipPrefixError(f"Video {self.path} is truncated: frames stop at {float(last * tb):.2f} s "
                                  f"of {promised:.2f} s.")
        return float((end - self.start_pts) * tb)

    def _keyframe_pts(self) -> list[int]:
        """Keyframe times in pts units from the container index (empty when the format has none)."""
        try:
            entries = self.stream.index_entries
            keys = [e.timestamp for e in entries if e.is_keyframe]
            first = entries[0].timestamp if len(entries) else None
        except (AttributeError, IndexError):
            return []
        if not keys:
            return []
        # mp4 indexes decode timestamps; with B-frames the first frame shows `shift` ticks after its dts
        shift = self.start_pts - first if first is not None and first <= self.start_pts else 0
        return sorted(k + shift for k in keys)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of a frame on screen before rotation: the stored width times the SAR."""
        w, h = self.coded_size
        return (max(1, round(w * self.sar)), h) if self.sar != 1 else (w, h)

    def info(self) -> VideoInfo:
        w, h = self.display_size
        if self.rotation in (90, 270):
            w, h = h, w
        count = self.stream.frames or self.packets or int(round(self.duration * self.fps))
        return VideoInfo(self.path, self.duration, self.fps, count, w, h, self.rotation, self.codec, self.start,
                         self.sar)

    # -- decoding
    def _decode(self) -> Iterator:
        """Frames in presentation order, decoding only what the current target `self.want` needs.

        A non-reference frame is skipped (never decoded) when a packet already in view has a later pts
        that is still <= the target: that frame can be neither the answer nor a reference. The decoder
        conceals bitstream errors and flags only the frame where it found one, so every frame after it
        up to the next keyframe is recorded as damaged too.
        """
        ctx = self.stream.codec_context
        ahead: deque = deque()                  # demuxed, not yet decoded
        fed: deque = deque(maxlen=_LOOKAHEAD)   # pts of packets decoded last
        damaged, last, skipping = False, None, False

        def decode(packet):
            nonlocal skipping
            if not self._checked:
                self._checked = True
                if packet.has_sidedata("encryption_info"):   # CENC/CBCS: FFmpeg would call it invalid data
                    raise ClipPrefixError(f"Video {self.path} is encrypted (CENC/DRM); it cannot be decoded "
                                          "without its key.")
            p, want = packet.pts, self.want
            skip = p is not None and want is not None and p < want and any(
                q is not None and p < q <= want for q in itertools.chain(fed, (x.pts for x in ahead)))
            if skip != skipping:
                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            fed.append(p)
            return packet.decode()

        try:
            for packet in itertools.chain(self.container.demux(self.stream), [None]):
                if packet is not None:
                    ahead.append(packet)
                    if len(ahead) <= _LOOKAHEAD:
                        continue
                while ahead and (packet is None or len(ahead) > _LOOKAHEAD):
                    for frame in decode(ahead.popleft()):
                        damaged = (damaged and not frame.key_frame) or frame.is_corrupt
                        if damaged and frame.pts is not None:
                            self.damaged.add(frame.pts)
                        last = frame.pts
                        yield frame
        except av.FFmpegError as e:
            at = f" after {float(last * self.tb):.2f} s" if last is not None else ""
            raise ClipPrefixError(f"Video {self.path} is corrupt or truncated: reading failed{at} ({_msg(e)}).") from e

    def _next(self):
        if self._head:
            return self._head.pop(0)
        return next(self._it, None)

    def seek(self, pts: int) -> None:
        """Position the decoder so that the next frame is the one on screen at `pts` or earlier."""
        back = max(1, int(round(1.0 / float(self.tb))))  # first retry one second earlier
        target = pts
        for _ in range(8):
            try:
                self.container.seek(max(target, self.start_pts), backward=True, any_frame=False, stream=self.stream)
            except av.FFmpegError as e:
                raise ClipPrefixError(f"Video {self.path} cannot be seeked to {float(target * self.tb):.3f} s ({_msg(e)}).") from e
            self._it = self._decode()
            self._head = []
            f = self._next()
            # a frame after the target, or one decoded without its references (open GOP): step back
            if f is None or f.pts is None or (f.pts <= pts and not f.is_corrupt) or target <= self.start_pts:
                if f is not None:
                    self._head = [f]
                return
            target -= back
            back *= 2
        raise ClipPrefixError(f"Video {self.path} cannot be seeked to {float(pts * self.tb):.3f} s (broken index).")

    def reformat(self, frame, **kw) -> np.ndarray:
        """Convert (and resize) with one cached swscale context: a fresh one per frame costs ~3 ms."""
        return self._reformatter.reformat(frame, threads=1, **kw).to_ndarray()

    def close(self) -> None:
        self.container.close()


def _msg(e: Exception) -> str:
    return str(getattr(e, "strerror", None) or e).strip().rstrip(".")


def probe(path: str | Path) -> VideoInfo:
    """Open, validate and describe a video; raises `ClipPrefixError` for anything that is not a real video."""
    r = VideoReader(path)
    try:
        return r.info()
    finally:
        r.close()
