"""A video -> segments -> one caption each -> merged cues -> SRT / WebVTT / JSON (+ key frames, preview).

    cap = Captioner.from_pretrained("clipcap-coco")
    result = caption_video(cap, "clip.mp4", "every:2")     # or "uniform:12", "scenes:0.1", a Sampling
    result.cues                                             # merged cues tiling [0, duration]
    result.write("clip_captions/", keyframes=True, preview=True)

Cue times count from the first frame, as players, ffmpeg's subtitle filter and `clipprefix live` do
(an MPEG-TS may start 1.4 s or an hour into its own clock); `result.start` is the first frame's time
in the file, and the frames behind each caption (`Cue.frames`, the JSON's `frames`, `start_pts`,
`end_pts`) keep the file's own times, so `video.frames_at(path, cue.frames)` decodes them again.

Segments come from `video.py` (uniform count, fixed interval or scene cuts). A video checkpoint reads
`frames.n` frames spread evenly over each segment, in order; an image checkpoint sees the segment's
middle frame. Frames are decoded once, in time order, at the encoder's input size, on a background
thread while CLIP and GPT-2 run on batches of segments: the model is loaded once per run, never per frame.
"""
from __future__ import annotations

import bisect
import html
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..base.errors import ClipPrefixError
from ..base.files import write_folder
from ..base.notebook import caption_html
from ..data import sampling, video
from ..data.video_write import write_mp4
from . import subtitles
from .display import thumbnail_data_uri
from .render import burn_in, caption_under, save_image
from .subtitles import Cue

DEFAULT_SEGMENTS = "every:2"


@dataclass
class VideoCaptions:
    path: Path
    duration: float                  # seconds (the timeline the cues tile: 0 .. duration, from the first frame)
    sampling: str                    # how segments were cut, e.g. 'every:2'
    segments: list[Cue]              # one per segment, before merging
    cues: list[Cue]                  # after merging: what the subtitle files show
    model: str = ""
    generation: dict = field(default_factory=dict)
    frames_per_segment: int = 1
    seconds: float = 0.0             # wall time spent (decoding + captioning)
    thumbnails: list[np.ndarray] = field(default_factory=list, repr=False)   # middle frame per segment
    start: float = 0.0               # the first frame's time in the file (s): cue time + start = file time

    def meta(self) -> dict:
        return {"video": str(self.path), "duration": round(self.duration, 6), "start_time": round(self.start, 6),
                "segmentation": self.sampling,
                "frames_per_segment": self.frames_per_segment, "model": self.model, "generation": self.generation}

    def write(self, out_dir: str | Path, stem: str | None = None, *, formats: Sequence[str] = subtitles.FORMATS,
              keyframes: bool = False, preview: bool = False, progress: bool | None = None) -> dict[str, Path]:
        """Write `<stem>.srt/.vtt/.json` (and `<stem>_keyframes/`, `<stem>_preview.mp4`) into `out_dir`."""
        out_dir = Path(out_dir)
        stem = stem or self.path.stem
        written = subtitles.write_subtitles(self.cues, out_dir, stem, formats, **self.meta())
        if keyframes:
            written["keyframes"] = write_keyframes(self, out_dir / f"{stem}_keyframes")
        if preview:
            written["preview"] = write_preview(self, out_dir / f"{stem}_preview.mp4", progress=progress)
        return written

    def _repr_html_(self) -> str:
        rows = []
        for c in self.cues:
            i = next((k for k, s in enumerate(self.segments) if s.start >= c.start), None)
            thumb = (f'<img src="{thumbnail_data_uri(self.thumbnails[i], 96)}" style="height:64px">'
                     if i is not None and i < len(self.thumbnails) else "")
            score = f"{c.score:.2f}" if c.score is not None else ""
            rows.append(f"<tr><td>{thumb}</td><td>{subtitles.srt_time(c.start)} &rarr; {subtitles.srt_time(c.end)}</td>"
                        f"<td style='max-width:32em'>{caption_html(c.text)}</td><td>{score}</td></tr>")
        head = (f"<p><b>{html.escape(self.path.name)}</b>: {len(self.segments)} segments ({self.sampling}) &rarr; "
                f"{len(self.cues)} cues in {self.seconds:.1f} s</p>")
        table = "<tr><th></th><th>time</th><th>caption</th><th>score</th></tr>" + "".join(rows)
        return f"{head}<table>{table}</table>"


# ------------------------------------------------------------------ segments
def segment_spans(path: str | Path, policy: str | sampling.Sampling, *, strict: bool = True,
                  info: video.VideoInfo | None = None) -> list[tuple[float, float]]:
    """The segments (start, end) in seconds. `strict`: a segment longer than the whole video, or
    shorter than one frame, is an error (otherwise the video becomes one segment)."""
    policy = sampling.parse_policy(policy)
    info = info or video.probe(path)
    if policy.kind == "scenes":
        return video.detect_scenes(path, policy.value, policy.min_seconds)
    frame = 1.0 / info.fps if info.fps else 0.0
    if policy.kind == "every" and policy.value > info.duration + 1e-6:
        if strict:
            raise ClipPrefixError(f"Video {path} lasts {info.duration:.2f} s, shorter than one {policy.value:g} s "
                                  "segment; choose a shorter --every or fewer --segments.")
        return [(info.start, info.end)]
    if policy.kind == "uniform" and info.duration / policy.value < frame * 0.999:
        if strict:
            raise ClipPrefixError(f"Video {path} has about {info.frame_count} frames ({info.duration:.2f} s), "
                                  f"too few for {int(policy.value)} segments; ask for fewer segments.")
        return [(info.start, info.end)]
    spans = policy.slots(info)
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < max(policy.value / 2 if policy.kind == "every" else 0, frame):
        spans[-2:] = [(spans[-2][0], spans[-1][1])]     # a sliver at the end joins the previous segment
    return spans


def frame_times(spans: Sequence[tuple[float, float]], n: int) -> list[float]:
    """`n` times per segment at the centres of `n` equal sub-slots (n = 1: the segment's middle)."""
    return [a + (k + 0.5) * (b - a) / n for a, b in spans for k in range(n)]


def frames_per_segment(captioner) -> int:
    """How many frames one caption reads: the checkpoint's `frames.n` for a video mapper, else 1."""
    if not captioner.is_video:
        return 1
    n = int(captioner.config.get("frames", {}).get("n", 8))
    max_frames = getattr(captioner.model.mapper_cfg, "max_frames", None) or n
    return max(1, min(n, max_frames))


def _prefetch(it: Iterable, depth: int = 2) -> Iterator:
    """Run `it` on a background thread, `depth` items ahead; its exceptions surface here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for x in it:
                if stop.is_set():
                    return
                q.put((x, None))
            q.put((done, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put((None, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()          # a generator closes its video file here

    t = threading.Thread(target=work, daemon=True, name="clipprefix-decode")
    t.start()
    try:
        while True:
            x, err = q.get()
            if err is not None:
                raise err
            if x is done:
                return
            yield x
    finally:
        stop.set()
        while t.is_alive():          # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


def _chunks(path, times, n_per_seg: int, segs_per_chunk: int, encoder, thumbs: bool) -> Iterator[tuple]:
    """Decode + preprocess on the decode thread: yields (pixels (k*n, 3, S, S), times, middle frames)."""
    size = encoder.pre.size
    frames = video.frames_at(path, times, short_side=size)
    step = segs_per_chunk * n_per_seg
    buf = []
    for f in frames:
        buf.append(f)
        if len(buf) == step:
            yield _pack(buf, n_per_seg, encoder, thumbs)
            buf = []
    if buf:
        yield _pack(buf, n_per_seg, encoder, thumbs)


def _pack(frames: list, n: int, encoder, thumbs: bool):
    pixels = encoder.preprocess([f.image for f in frames])
    mids = []
    for k in range(0, len(frames), n) if thumbs else ():
        im = Image.fromarray(frames[k + n // 2].image)
        im.thumbnail((128, 72))
        mids.append(np.asarray(im))
    return pixels, [f.time for f in frames], mids


# ------------------------------------------------------------------ captioning
def caption_video(captioner, path: str | Path, segments: str | sampling.Sampling = DEFAULT_SEGMENTS, *,
                  strict: bool = True, merge: float | None = 0.85, batch_size: int = 32,
                  progress: bool | None = None, thumbnails: bool = True, generation=None,
                  **overrides) -> VideoCaptions:
    """Caption each segment of `path`; `merge` (similarity threshold, None: off) joins consecutive
    near-identical captions; `thumbnails` keeps a small picture per segment (for notebooks).
    Decoding `overrides` (strategy, num_beams, ...) as in `Captioner`."""
    if batch_size < 1:
        raise ClipPrefixError(f"batch_size must be at least 1, got {batch_size}.")
    gen = (generation or captioner.generation).updated(**overrides).validate()
    t0 = time.perf_counter()
    path = Path(path)
    policy = sampling.parse_policy(segments)
    info = video.probe(path)
    spans = segment_spans(path, policy, strict=strict, info=info)
    n = frames_per_segment(captioner)
    encoder = captioner.encoder
    times = frame_times(spans, n)
    caps, frame_ts, thumbs = [], [], []
    bar = tqdm(total=len(spans), desc=path.name, unit="seg", disable=(not progress) if progress is not None else None,
               leave=False)
    try:
        for pixels, ts, mids in _prefetch(_chunks(path, times, n, batch_size, encoder, thumbnails)):
            feats = encoder.encode_pixels(pixels)
            feats = feats.view(-1, n, feats.shape[-1])
            caps += captioner.caption_features(feats, gen, batch_size=batch_size)
            frame_ts += [ts[i:i + n] for i in range(0, len(ts), n)]
            thumbs += mids
            bar.update(feats.shape[0])
    finally:
        bar.close()
    if len(caps) != len(spans):
        raise ClipPrefixError(f"Video {path} gave {len(caps)} of {len(spans)} segments (truncated stream).")
    first = info.start    # spans and frames are on the file's clock; cues count from its first frame
    segs = [Cue(a - first, b - first, subtitles.clean(c.text), c.score, list(ts), c.alternatives)
            for (a, b), c, ts in zip(spans, caps, frame_ts)]
    segs = subtitles.tile(segs, 0.0, info.duration)
    cues = subtitles.merge_cues(segs, merge)
    name = str(captioner.folder.name if captioner.folder else captioner.config.get("name", ""))
    return VideoCaptions(path, info.duration, str(policy), segs, cues, name, gen.to_dict(), n,
                         time.perf_counter() - t0, thumbs, info.start)


# ------------------------------------------------------------------ extra outputs
def write_keyframes(result: VideoCaptions, folder: Path, short_side: int = 360) -> Path:
    """One JPEG per cue: the middle frame of the cue's best segment, its caption drawn under it."""
    mids = []
    for c in result.cues:
        best = max(c.parts, key=lambda p: p["score"] if p["score"] is not None else float("-inf")) if c.parts else None
        a, b = (best["start"], best["end"]) if best else (c.start, c.end)
        mids.append(result.start + (a + b) / 2)          # on the file's clock
    frames = list(video.frames_at(result.path, mids, short_side=short_side))

    def fill(d: Path):
        for i, (c, f) in enumerate(zip(result.cues, frames), 1):
            stamp = subtitles.srt_time(c.start).replace(":", "-").replace(",", ".")
            save_image(caption_under(f.image, c.text), d / f"{i:04d}_{stamp}.jpg")

    return write_folder(folder, fill)


def cue_at(cues: Sequence[Cue], t: float) -> Cue | None:
    """The cue on screen at time `t` (seconds), by binary search over the tiled cues."""
    i = bisect.bisect_right([c.start for c in cues], t) - 1
    if 0 <= i < len(cues) and t < cues[i].end + 1e-9:
        return cues[i]
    return cues[-1] if cues and t >= cues[-1].end else None      # past the end: the last cue stays


def _even(img: np.ndarray) -> np.ndarray:
    """Padded (edge pixels repeated) to even sizes of at least 2x2, as yuv420p needs; nothing is cut off."""
    h, w = img.shape[:2]
    ph, pw = max(2, h + h % 2) - h, max(2, w + w % 2) - w
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else img


def write_preview(result: VideoCaptions, path: Path, *, short_side: int = 480, progress: bool | None = None) -> Path:
    """An H.264 mp4 of the video (at most `short_side` pixels on its shorter side, display aspect) with the
    captions burned in, at the source's own frame times counted from its first frame, and the source's
    audio: copied when mp4 holds its codec, else re-encoded to AAC."""
    times: list[float] = []   # pts from the first frame, so the preview starts at once, as the cues do

    def frames():
        with tqdm(desc=f"preview {result.path.name}", unit="fr", leave=False,
                  disable=(not progress) if progress is not None else None) as bar:
            for f in video.iter_frames(result.path, short_side=short_side):
                t = f.time - result.start
                c = cue_at(result.cues, t)
                times.append(t)
                bar.update(1)
                yield burn_in(np.ascontiguousarray(_even(f.image)), c.text if c else "")

    info = video.probe(result.path)
    return write_mp4(path, frames(), info.fps or 25, pts=times,    # pts[i] is appended before frame i is yielded
                     audio_from=result.path, audio_start=result.start)
