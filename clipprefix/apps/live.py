"""Live captioning: frames from OpenCV (webcam, file at its own speed, stream), captioned asynchronously.

    result = run_session(captioner, open_source("0"), show=window("live"))   # `clipprefix live` (commands/live.py)
    session_cues(result)                                                       # the SRT cues, timed by the frames

The reading thread shows every frame at once; a worker thread captions the newest frame whenever it is
free (frames that arrive meanwhile are simply not captioned), so the display never waits for the model.
A video checkpoint reads its last `frames.n` frames, spread over the last `clip_seconds`.

Stream times count from the first frame (as OpenCV reports them, and as `clipprefix caption` writes
its cues); a file's session ends where its last frame ends (its pts + its duration, from PyAV). The
SRT merges similar consecutive captions (a model's frame-to-frame jitter in punctuation or an article)
and keeps every cue on screen at least `subtitles.MIN_CUE_S`.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..base.errors import ClipPrefixError
from ..data import video
from .render import burn_in
from .subtitles import MIN_CUE_S, Cue, clean, hold, merge_cues, tile
from .video_captions import frames_per_segment

CAMERA_START_S = 5.0     # a camera may take this long to deliver its first frame
CAMERA_RETRIES_S = 1.0   # after that, a camera that delivers nothing for this long is gone


@dataclass
class LiveCaption:
    time: float        # stream time of the (last) frame captioned, seconds
    text: str
    score: float
    read_at: float     # wall clock (perf_counter) when that frame was read
    done_at: float     # wall clock when the caption was ready

    @property
    def lag(self) -> float:
        return self.done_at - self.read_at


@dataclass
class LiveResult:
    captions: list[LiveCaption]
    frames: int            # frames read and shown
    wall: float            # seconds the session ran
    end_time: float        # stream time at the end (the SRT's last cue ends here)
    reason: str            # why it ended
    srt: Path | None = None
    cues: list[Cue] = field(default_factory=list)
    error: Exception | None = None   # what stopped the session, when it was a failure (the captions are kept)

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall > 0 else 0.0

    @property
    def refresh_rate(self) -> float:
        """Captions per second of wall time."""
        return len(self.captions) / self.wall if self.wall > 0 else 0.0

    def lag_stats(self) -> dict:
        lags = np.array([c.lag for c in self.captions]) if self.captions else np.zeros(1)
        return {"mean": float(lags.mean()), "median": float(np.median(lags)), "max": float(lags.max())}

    def summary(self) -> str:
        s = self.lag_stats()
        return (f"{self.frames} frames at {self.fps:.1f} fps, {len(self.captions)} captions "
                f"({self.refresh_rate:.2f}/s), lag mean {s['mean']:.2f} s, median {s['median']:.2f} s, "
                f"max {s['max']:.2f} s ({self.reason})")


class CaptionWorker:
    """Captions the newest offered frames on a background thread; `offer` never blocks."""

    def __init__(self, captioner, generation, n_frames: int = 1):
        self.captioner, self.generation, self.n = captioner, generation, n_frames
        self._cv = threading.Condition()
        self._pending: tuple | None = None     # (frames, stream time, read_at), replaced by newer offers
        self._stop = False
        self._done: list[LiveCaption] = []
        self._error: BaseException | None = None
        self.busy = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="clipprefix-live-caption")
        self._thread.start()

    def offer(self, frames: list[np.ndarray], t: float, read_at: float) -> None:
        with self._cv:
            self._pending = (frames, t, read_at)
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                (frames, t, read_at), self._pending = self._pending, None
                self.busy = True
            try:
                feats = self.captioner.encode_images(frames)
                cap = self.captioner.caption_features(feats[None], self.generation)[0]
                with self._cv:
                    self._done.append(LiveCaption(t, cap.text, cap.score, read_at, time.perf_counter()))
            except BaseException as e:  # noqa: BLE001 - handed to the main thread, which re-raises it
                self._error = e
                return
            finally:
                self.busy = False

    def poll(self) -> list[LiveCaption]:
        """Captions finished since the last poll; re-raises a failure of the worker."""
        if self._error is not None:
            raise self._error
        with self._cv:
            out, self._done = self._done, []
        return out

    def close(self, wait: float = 30.0) -> list[LiveCaption]:
        """Stop taking frames, let the caption in progress finish (up to `wait` s), return the rest."""
        with self._cv:
            self._stop = True
            self._pending = None
            self._cv.notify_all()
        deadline = time.perf_counter() + wait
        while self.busy and time.perf_counter() < deadline:
            time.sleep(0.01)
        with self._cv:
            out, self._done = self._done, []
        return out


# ------------------------------------------------------------------ sources
def parse_source(source: str) -> tuple[str, object]:
    """'0' -> ('camera', 0); 'rtsp://...' -> ('stream', url); a path -> ('file', path)."""
    s = str(source).strip()
    if s.isdigit():
        return "camera", int(s)
    if "://" in s:
        return "stream", s
    p = Path(s).expanduser()
    video.probe(p)       # one-sentence errors for missing, empty, corrupt and non-video files
    return "file", p


class Source:
    """The (RGB frame, stream time) pairs of `open_source`; `end`: where a file's timeline ends (seconds from
    its first frame: the last frame's pts + its duration), None for cameras and streams."""

    def __init__(self, frames: Iterator[tuple[np.ndarray, float]], end: float | None = None):
        self.frames, self.end = frames, end

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        return self.frames


def open_source(source: str, *, speed: float = 1.0) -> Source:
    """(RGB frame, stream time in seconds) from OpenCV; files (and finite streams) are paced to their own
    timestamps divided by `speed`, cameras and live streams come as fast as they deliver."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")   # our one-sentence error replaces FFmpeg's log lines
    import cv2   # optional: the `apps` extra (OpenCV)

    kind, target = parse_source(source)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)   # and OpenCV's "can't open camera" warnings
    try:
        cap = cv2.VideoCapture(str(target) if kind == "file" else target)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        what = {"camera": f"camera {target} (no camera there, or it is in use)", "stream": f"stream {target}",
                "file": f"video {target}"}[kind]
        raise ClipPrefixError(f"OpenCV cannot open {what}.")
    paced = kind == "file" or (kind == "stream" and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0)
    return Source(_read(cap, kind, paced, speed), video.probe(target).duration if kind == "file" else None)


def _read(cap, kind: str, paced: bool, speed: float) -> Iterator[tuple[np.ndarray, float]]:
    import cv2   # optional: the `apps` extra (OpenCV)

    t0 = time.perf_counter()
    last_ok = t0
    try:
        while True:
            ok, bgr = cap.read()
            now = time.perf_counter()
            if not ok:
                patience = CAMERA_RETRIES_S if last_ok > t0 else CAMERA_START_S
                if kind == "camera" and now - last_ok < patience:
                    time.sleep(0.02)
                    continue
                return
            last_ok = now
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if paced else now - t0
            if paced:
                wait = t0 + t / speed - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            yield np.ascontiguousarray(bgr[..., ::-1]), t
    finally:
        cap.release()


# ------------------------------------------------------------------ the session
def run_session(captioner, frames: Iterable[tuple[np.ndarray, float]], *, generation=None,
                on_caption: Callable[[LiveCaption], None] | None = None,
                show: Callable[[np.ndarray, str, float], bool] | None = None,
                max_seconds: float | None = None, clip_seconds: float = 2.0, warmup: bool = True) -> LiveResult:
    """Caption a stream of (RGB frame, stream time) asynchronously until it ends, `show` returns
    False, `max_seconds` pass or Ctrl-C. `show(frame, caption, fps)` displays a frame."""
    gen = (generation or captioner.generation).validate()
    n = frames_per_segment(captioner)
    stream_end = getattr(frames, "end", None)   # a file's end (its last frame + that frame's duration)
    if warmup:   # load the encoder and run the model once, so the first lag is not the loading time
        captioner.caption_features(captioner.encode_images([np.zeros((64, 64, 3), np.uint8)])[None], gen)
    worker = CaptionWorker(captioner, gen, n)
    recent: deque = deque(maxlen=n)          # a video checkpoint's frames, clip_seconds / n apart
    captions: list[LiveCaption] = []
    shown, t_last, step, reason = 0, 0.0, 1.0 / 30, "end of stream"   # step: the last frame's duration
    stamps: deque = deque(maxlen=30)         # display times of the last frames, for the FPS overlay
    start = time.perf_counter()
    current = ""
    error = None
    it = iter(frames)
    try:
        while True:
            try:
                item = next(it)
            except StopIteration:
                break
            frame, t = item
            now = time.perf_counter()
            if n > 1 and (not recent or t - recent[-1][1] >= clip_seconds / n):
                recent.append((frame, t))
            if not worker.busy:
                worker.offer([f for f, _ in recent] if n > 1 else [frame], t, now)
            for c in worker.poll():
                captions.append(c)
                current = c.text
                if on_caption:
                    on_caption(c)
            shown += 1
            step = t - t_last if shown > 1 and t > t_last else step
            t_last = t
            stamps.append(now)
            fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
            if show is not None and show(frame, current, fps) is False:
                reason = "closed by the user"
                break
            if max_seconds is not None and now - start >= max_seconds:
                reason = f"time limit of {max_seconds:g} s"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
    except Exception as e:                       # noqa: BLE001 - the caller saves what was captioned, then re-raises
        reason, error = f"stopped by an error ({type(e).__name__}: {e})", e
    finally:
        close = getattr(it, "close", None)
        if close:
            close()                              # releases the capture device
        late = worker.close()
    for c in late:
        captions.append(c)
        if on_caption:
            on_caption(c)
    wall = time.perf_counter() - start
    end = t_last + step if shown else 0.0       # stopped early: the last frame lasts as long as the gap before it
    if reason == "end of stream" and stream_end is not None and shown:
        end = max(stream_end, t_last)
    return LiveResult(captions, shown, wall, end, reason, error=error)


def session_cues(result: LiveResult, *, merge: float = 0.85, min_seconds: float = MIN_CUE_S) -> list[Cue]:
    """Cues from the captions, each from its frame's time until the next caption; consecutive captions at
    least `merge` similar are one cue, and every cue stays `min_seconds` on screen where the session allows."""
    caps = sorted(result.captions, key=lambda c: c.time)
    cues = [Cue(c.time, c.time, clean(c.text), c.score, [c.time]) for c in caps]
    return hold(merge_cues(tile(cues, None, max(result.end_time, caps[-1].time) if caps else None), merge),
                min_seconds, merge)


# ------------------------------------------------------------------ display
def window(title: str):
    """A `show` callback drawing into an OpenCV window, or None when no window can be opened."""
    import cv2   # optional: the `apps` extra (OpenCV)

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None
    try:
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
    except cv2.error:
        return None   # opencv-python-headless: no GUI support
    def show(frame: np.ndarray, caption: str, fps: float) -> bool:
        img = burn_in(frame, caption or "…", f"{fps:.0f} fps")   # whole numbers: the box is rendered once per text
        cv2.imshow(title, img[..., ::-1])
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:
            return cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    return show


def close_windows() -> None:
    """Close what `window` opened."""
    import cv2   # optional: the `apps` extra (OpenCV)

    cv2.destroyAllWindows()
