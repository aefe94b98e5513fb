"""Test support: independent checkers (never through clipprefix): SRT via `srt`, WebVTT via webvtt-py, PyAV
probes, which picture a frame shows, and the ffmpeg burn-in oracle.

    read_srt("x.srt")                     # [(start s, end s, text)], strict parse by the `srt` package
    probe_frames("offset.ts")             # first / end / display size by decoding every frame with PyAV
    lines_up("offset.ts", "x.srt", "x.json")   # ffmpeg's own subtitles= burn-in at each cue's middle frame

The oracle needs a system `ffmpeg` with libass and a font (Debian: `apt-get install -y
--no-install-recommends ffmpeg fonts-dejavu-core`; `.ci/run` installs them); `have_burn_in()` says
whether it is here. PyAV's bundled FFmpeg has no `subtitles` filter.
"""
from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from media import SCENE_COLORS
from media_images import QUAD_COLORS


# ------------------------------------------------------------------ subtitles
def read_srt(path) -> list[tuple[float, float, str]]:
    import srt

    subs = srt.parse(Path(path).read_text(encoding="utf-8"), ignore_errors=False)
    return [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subs]


def read_vtt(path) -> list[tuple[float, float, str]]:
    import webvtt

    def sec(hms):   # webvtt-py's *_in_seconds drop the milliseconds
        h, m, s = hms.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    return [(sec(c.start), sec(c.end), c.text) for c in webvtt.read(str(path))]


# ------------------------------------------------------------------ PyAV
def probe_frames(path, keep_images: bool = False) -> dict:
    """Decode every frame: 'first'/'last' pts (s), 'end' = last + its duration, 'times', 'display_size'
    (coded width x SAR, after rotation), 'images' (upright RGB, coded size) on request."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        sar = s.sample_aspect_ratio or s.codec_context.sample_aspect_ratio or Fraction(1)
        rows, rot, images = [], 0, []
        for f in c.decode(s):
            if f.pts is None:
                continue
            rows.append((float(f.pts * s.time_base), float(f.duration * s.time_base) if f.duration else None))
            rot = (-int(round(f.rotation or 0))) % 360
            size = (f.width, f.height)
            if keep_images:
                images.append(upright(f.to_ndarray(format="rgb24"), rot))
        order = np.argsort([t for t, _ in rows])
        times = [rows[i][0] for i in order]
        last = rows[order[-1]][1] or (float(np.median(np.diff(times))) if len(times) > 1 else 1 / float(s.average_rate))
        w, h = size
        dw = int(round(w * sar))
        return {"first": times[0], "last": times[-1], "end": times[-1] + last, "times": times,
                "display_size": (h, dw) if rot in (90, 270) else (dw, h), "rotation": rot,
                "images": [images[i] for i in order] if keep_images else None, "audio": len(c.streams.audio)}


def upright(arr: np.ndarray, rotation_cw: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(arr, k=-(rotation_cw // 90))) if rotation_cw else arr


def frame_at(path, t: float) -> np.ndarray:
    """The upright frame on screen at absolute pts time `t`, decoding forward from the start."""
    best = None
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            if f.pts is not None and float(f.pts * s.time_base) <= t + 1e-9:
                best = upright(f.to_ndarray(format="rgb24"), (-int(round(f.rotation or 0))) % 360)
            elif f.pts is not None:
                break
    return best


# ------------------------------------------------------------------ pictures
def _nearest(color, palette) -> tuple[int, float]:
    d = [float(np.abs(np.asarray(color, float) - np.asarray(p, float)).sum()) for p in palette]
    return int(np.argmin(d)), min(d)


def scene_of(rgb: np.ndarray, max_dist: float = 90.0) -> int | None:
    """Index of the SCENE_COLORS background (top-right third), None when nothing is close."""
    h, w = rgb.shape[:2]
    region = rgb[: max(1, h // 3), w // 2:] if w >= 2 else rgb[: max(1, h // 3)]
    k, d = _nearest(np.median(region.reshape(-1, 3), axis=0), SCENE_COLORS)
    return k if d <= max_dist else None


def is_upright(rgb: np.ndarray, aspect: float | None = 1.5, tol: float = 0.08) -> bool:
    """`media_images.canonical_image()` the right way up (with width/height `aspect`)."""
    h, w = rgb.shape[:2]
    names = list(QUAD_COLORS)
    for q, (y, x) in {"tl": (h // 4, w // 4), "tr": (h // 4, 3 * w // 4),
                      "bl": (3 * h // 4, w // 4), "br": (3 * h // 4, 3 * w // 4)}.items():
        patch = rgb[max(0, y - h // 10): y + h // 10 + 1, max(0, x - w // 10): x + w // 10 + 1].reshape(-1, 3)
        k, d = _nearest(np.median(patch, axis=0), [QUAD_COLORS[n] for n in names])
        if names[k] != q or d >= 120:
            return False
    return aspect is None or abs(w / h - aspect) <= tol * aspect


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a).astype(np.int16) - np.asarray(b).astype(np.int16)).mean())


# ------------------------------------------------------------------ the burn-in oracle
@functools.lru_cache(maxsize=1)
def have_burn_in() -> bool:
    ff = shutil.which("ffmpeg")
    if not ff:
        return False
    out = subprocess.run([ff, "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == ["subtitles"] for line in out.splitlines() if line.strip())


def _srt_text(cues) -> str:
    def t(x):
        ms = int(round(x * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"
    return "\n".join(f"{i}\n{t(a)} --> {t(b)}\n{txt}\n" for i, (a, b, txt) in enumerate(cues, 1))


def ffmpeg_frames(video, srt_file=None) -> np.ndarray:
    """Every frame as the system ffmpeg decodes it, with `srt_file` burned in by its `subtitles` filter the
    way a user would run it (no -copyts: times count from the first frame), N x H x W x 3."""
    with av.open(str(video)) as c:
        w, h = c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(Path(video).resolve()), "-an", "-sn"]
    if srt_file is not None:
        cmd += ["-vf", f"subtitles={Path(srt_file).name}"]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    out = subprocess.run(cmd, capture_output=True, check=True, cwd=Path(srt_file).parent if srt_file else None).stdout
    n = len(out) // (w * h * 3)
    return np.frombuffer(out, np.uint8)[: n * w * h * 3].reshape(n, h, w, 3)


def lines_up(video, srt_file, json_file, band: float = 0.35) -> list[dict]:
    """Per cue of `srt_file`: at its middle (player clock) which cue text ffmpeg burned into that frame (the
    bottom `band` compared with each distinct text burned alone and with no subtitle), the scene shown there,
    and the scene of the frames the caption was made from (the JSON segment's absolute 'frames', decoded
    with PyAV). 'ok': the cue's own text is burned over its own picture."""
    cues = read_srt(srt_file)
    segs = json.loads(Path(json_file).read_text(encoding="utf-8"))["segments"]
    info = probe_frames(video)
    rel = [t - info["first"] for t in info["times"]]
    burned, plain = ffmpeg_frames(video, srt_file), ffmpeg_frames(video)
    refs = {}
    with tempfile.TemporaryDirectory() as d:
        for j, txt in enumerate(dict.fromkeys(c[2] for c in cues)):
            p = Path(d) / f"ref{j}.srt"
            p.write_text(_srt_text([(0.0, rel[-1] + 2, txt)]), encoding="utf-8")
            refs[txt] = ffmpeg_frames(video, p)
    y0 = int(burned.shape[1] * (1 - band))
    rows = []
    for a, b, txt in cues:
        mid = (a + b) / 2
        k = max(0, int(np.searchsorted(rel, mid + 1e-9, side="right")) - 1)
        score = {t: mad(burned[k, y0:], r[k, y0:]) for t, r in refs.items()}
        best = min(score, key=score.get)
        shown = best if score[best] < mad(burned[k, y0:], plain[k, y0:]) else None
        seg = next((s for s in segs if s["start"] <= mid < s["end"]), None)
        src = [scene_of(frame_at(video, t)) for t in seg["frames"]] if seg else []
        source = max(set(src), key=src.count) if src else None
        scene = scene_of(burned[k])
        rows.append({"cue": txt, "mid": mid, "shown": shown, "scene": scene, "source_scene": source,
                     "ok": shown == txt and scene is not None and scene == source})
    return rows
