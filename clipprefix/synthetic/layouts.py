"""Synthetic images and videos whose captions describe exactly what is drawn, in the real dataset layouts.

A scene is one or two shapes (colour, shape, position, count) on a dark grey, mildly noisy
background; a clip is one shape moving across the frame in one of four directions, so that the
direction can be told only from frame order. Everything is deterministic given a seed (and each
item depends only on (seed, index), so a bigger dataset starts with the same items as a smaller one).

    python -m clipprefix.synthetic /tmp/synth       # writes msrvtt/, coco/, flickr30k/, user/ below it

    from clipprefix import synthetic
    synthetic.make_all(root, seed=0)                 # the smoke layouts, seconds on a CPU
    synthetic.make_msrvtt(root, n_train=100)         # one layout at a chosen size
    synthetic.make_video("demo.mp4", n_scenes=4)     # one longer clip with distinct scenes (apps, demo)
    synthetic.all_captions()                         # every caption the generator can write (tokenizer)
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..base.errors import ClipPrefixError
from ..base.paths import atomic_path, atomic_write_text

COLOURS = {"red": (220, 45, 45), "green": (45, 190, 70), "blue": (55, 95, 235), "yellow": (235, 215, 45)}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom")
COUNTS = (1, 2)
DIRECTIONS = ("left to right", "right to left", "top to bottom", "bottom to top")

_AT = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
_AT_SIDE = {"left": "on the left side", "right": "on the right side",
            "top": "at the top of the image", "bottom": "at the bottom of the image"}
_TOWARD = {"left to right": "to the right", "right to left": "to the left",
           "top to bottom": "downwards", "bottom to top": "upwards"}

# Paraphrases after the canonical caption. Fields: det (a/two), one (one/two), be (is/are), c, n (noun).
_IMAGE_TEMPLATES = (
    "there {be} {det} {c} {n} {at}",
    "a picture of {det} {c} {n} {at}",
    "{one} {c} {n} {side}",
    "an image with {det} {c} {n} {at}",
    "{det} {c} {n} {be} {side}",
    "{det} {n} in {c} {at}",
    "{det} {c} {n} drawn {at}",
    "a grey background with {det} {c} {n} {at}",
)
_VIDEO_TEMPLATES = (
    "a {c} {s} slides from {a} to {b}",
    "a {c} {s} travels from {a} to {b}",
    "a {c} {s} goes from {a} to {b}",
    "a {c} {s} glides from {a} to {b}",
    "a {c} {s} drifts from {a} to {b}",
    "a {c} {s} is moving from {a} to {b}",
    "a {c} {s} is sliding from {a} to {b}",
    "the {c} {s} moves from {a} to {b}",
    "there is a {c} {s} moving from {a} to {b}",
    "a video of a {c} {s} moving from {a} to {b}",
    "a {c} {s} crosses the screen from {a} to {b}",
    "a {c} {s} moves across the frame from {a} to {b}",
    "a small {c} {s} moves from {a} to {b}",
    "a {s} in {c} moves from {a} to {b}",
    "a {c} {s} moves {toward}",
    "a {c} {s} slides {toward}",
    "a {c} {s} is moving {toward}",
    "a {c} {s} goes {toward}",
    "a {c} {s} travels {toward}",
    "a {c} {s} starts {pa} and ends {pb}",
    "a {c} {s} starts {pa} and moves {toward}",
)
IMAGE_CAPTIONS_PER_ITEM = 5   # as COCO / Flickr30k
VIDEO_CAPTIONS_PER_ITEM = 20  # as MSR-VTT


# ------------------------------------------------------------------ what is drawn, and its captions
@dataclass(frozen=True)
class Still:
    """One or two shapes of one kind and colour in one region of the image."""
    colour: str
    shape: str
    position: str
    count: int = 1

    def _fields(self) -> dict:
        two = self.count == 2
        return dict(det="two" if two else "a", one="two" if two else "one", be="are" if two else "is",
                    c=self.colour, n=self.shape + ("s" if two else ""), at=_AT[self.position],
                    side=_AT_SIDE[self.position])

    def caption(self) -> str:
        """The canonical caption, e.g. 'a red circle on the left', 'two blue squares at the top'."""
        return "{det} {c} {n} {at}".format(**self._fields())

    def captions(self, rng: np.random.Generator | None = None, n: int = IMAGE_CAPTIONS_PER_ITEM) -> list[str]:
        """The canonical caption first, then `n - 1` paraphrases (chosen by `rng`, else the first ones)."""
        picks = _pick(len(_IMAGE_TEMPLATES), n - 1, rng)
        return [self.caption()] + [_IMAGE_TEMPLATES[i].format(**self._fields()) for i in picks]


@dataclass(frozen=True)
class Motion:
    """One shape moving across the frame along one of `DIRECTIONS`."""
    colour: str
    shape: str
    direction: str

    def _fields(self) -> dict:
        a, b = self.direction.split(" to ")
        return dict(c=self.colour, s=self.shape, a=a, b=b, toward=_TOWARD[self.direction], pa=_AT[a], pb=_AT[b])

    def caption(self) -> str:
        """The canonical caption, e.g. 'a red circle moves from left to right'."""
        return "a {c} {s} moves from {a} to {b}".format(**self._fields())

    def captions(self, rng: np.random.Generator | None = None, n: int = VIDEO_CAPTIONS_PER_ITEM) -> list[str]:
        picks = _pick(len(_VIDEO_TEMPLATES), n - 1, rng)
        return [self.caption()] + [_VIDEO_TEMPLATES[i].format(**self._fields()) for i in picks]


def _pick(n_templates: int, k: int, rng: np.random.Generator | None) -> list[int]:
    k = max(0, min(k, n_templates))
    if rng is None:
        return list(range(k))
    return sorted(rng.choice(n_templates, size=k, replace=False).tolist())


STILLS = tuple(Still(c, s, p, n) for c in COLOURS for s in SHAPES for p in POSITIONS for n in COUNTS)
MOTIONS = tuple(Motion(c, s, d) for c in COLOURS for s in SHAPES for d in DIRECTIONS)


def all_captions() -> list[str]:
    """Every caption string the generator can write (sorted, unique): the tiny tokenizer trains on these."""
    out = set()
    for st in STILLS:
        out.update(st.captions(None, 1 + len(_IMAGE_TEMPLATES)))
    for mo in MOTIONS:
        out.update(mo.captions(None, 1 + len(_VIDEO_TEMPLATES)))
    return sorted(out)


_WORDS = re.compile(r"[a-z]+")


def caption_parts(caption: str) -> dict:
    """Read the attributes back from any caption (ours or a model's): colour, shape, count, position,
    direction; None where the caption does not say (or says two different things)."""
    words = _WORDS.findall(caption.lower())
    colours = {w for w in words if w in COLOURS}
    shapes = {w.rstrip("s") for w in words if w.rstrip("s") in SHAPES}
    plural = any(w in {s + "s" for s in SHAPES} for w in words)
    text = " ".join(words)
    direction = None
    m = re.search(r"\bfrom (left|right|top|bottom) to (left|right|top|bottom)\b", text)
    if m and f"{m.group(1)} to {m.group(2)}" in DIRECTIONS:
        direction = f"{m.group(1)} to {m.group(2)}"
    else:
        m = re.search(r"\bstarts (?:on|at) the (left|right|top|bottom)\b", text)
        for d, toward in _TOWARD.items():
            if re.search(rf"\b{toward}\b", text) or (m and d.startswith(m.group(1) + " ")):
                direction = d
                break
    places = {w for w in words if w in POSITIONS}
    return {
        "colour": colours.pop() if len(colours) == 1 else None,
        "shape": next(iter(shapes)) if len(shapes) == 1 else None,
        "count": (2 if ("two" in words or plural) else 1) if shapes else None,
        "position": places.pop() if direction is None and len(places) == 1 else None,
        "direction": direction,
    }


# ------------------------------------------------------------------ drawing
def _background(rng: np.random.Generator, width: int, height: int, grey: tuple[float, float] = (35, 95)) -> np.ndarray:
    grey = rng.uniform(*grey)                  # dark-ish grey, different per item
    tint = rng.uniform(-6, 6, size=3)          # a faint colour cast so items are not all one grey
    noise = rng.normal(0.0, 6.0, size=(height, width, 1))  # mild luminance noise
    return np.clip(grey + tint + noise, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, name: str) -> tuple[int, int, int]:
    base = np.array(COLOURS[name], dtype=float) + rng.uniform(-18, 18, size=3)
    return tuple(int(v) for v in np.clip(base, 0, 255))


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        s = r * 0.9  # same visual area as the circle, roughly
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r * 1.05, cy + r * 0.8), (cx + r * 1.05, cy + r * 0.8)], fill=fill)
    else:
        raise ClipPrefixError(f"Unknown synthetic shape {shape!r}; use one of {', '.join(SHAPES)}.")


def draw_still(still: Still, rng: np.random.Generator, size: tuple[int, int] = (96, 96), *,
               grey: tuple[float, float] = (35, 95)) -> np.ndarray:
    """Render a `Still` as an HxWx3 uint8 array; two shapes sit side by side along the region's long axis.
    `grey` is the range the background level is drawn from (0-255)."""
    w, h = size
    m = min(w, h)
    img = Image.fromarray(_background(rng, w, h, grey))
    draw = ImageDraw.Draw(img)
    fill = _colour(rng, still.colour)
    # region centre (fractions of the frame), jittered so positions vary within the region
    horizontal = still.position in ("left", "right")
    cx = {"left": 0.25, "right": 0.75}.get(still.position, 0.5) + rng.uniform(-0.04, 0.04)
    cy = {"top": 0.25, "bottom": 0.75}.get(still.position, 0.5) + rng.uniform(-0.04, 0.04)
    if still.count == 1:
        r = rng.uniform(0.12, 0.16) * m
        _draw(draw, still.shape, cx * w, cy * h, r, fill)
    else:
        r = rng.uniform(0.08, 0.10) * m
        gap = rng.uniform(0.17, 0.21)
        for sgn in (-1, 1):
            if horizontal:   # left/right regions are tall: stack along y
                _draw(draw, still.shape, cx * w, (cy + sgn * gap) * h, r, fill)
            else:            # top/bottom regions are wide: side by side along x
                _draw(draw, still.shape, (cx + sgn * gap) * w, cy * h, r, fill)
    return np.asarray(img)


def motion_frames(motion: Motion, rng: np.random.Generator, size: tuple[int, int] = (128, 96),
                  n_frames: int = 24, *, grey: tuple[float, float] = (35, 95)) -> Iterable[np.ndarray]:
    """Yield the frames of a `Motion` clip: the shape travels from 15% to 85% of the frame."""
    w, h = size
    bg = _background(rng, w, h, grey)
    fill = _colour(rng, motion.colour)
    r = rng.uniform(0.12, 0.16) * min(w, h)
    cross = rng.uniform(0.4, 0.6)          # where on the other axis the path runs
    a, b = motion.direction.split(" to ")
    start = {"left": 0.15, "top": 0.15, "right": 0.85, "bottom": 0.85}[a]
    end = {"left": 0.15, "top": 0.15, "right": 0.85, "bottom": 0.85}[b]
    horizontal = a in ("left", "right")
    for i in range(n_frames):
        t = start + (end - start) * i / max(1, n_frames - 1)
        img = Image.fromarray(bg)
        cx, cy = (t * w, cross * h) if horizontal else (cross * w, t * h)
        _draw(ImageDraw.Draw(img), motion.shape, cx, cy, r, fill)
        yield np.asarray(img)


# ------------------------------------------------------------------ file writers
def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 12, *,
              pts: Sequence[float] | None = None, rotation: int = 0, faststart: bool = False,
              options: dict | None = None) -> Path:
    """Encode RGB uint8 frames as H.264 (yuv420p) in an mp4, atomically.

    `pts` gives each frame's time in seconds (variable frame rate); `rotation` stores a display
    rotation, degrees clockwise as a phone's `rotate` tag (90 = portrait clip stored landscape);
    `faststart` puts the index before the data. Width and height must be even (yuv420p).
    """
    import av
    from fractions import Fraction

    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ClipPrefixError(f"No frames to write to {path}.")
    h, w = first.shape[:2]
    if w % 2 or h % 2:
        raise ClipPrefixError(f"H.264 yuv420p needs even frame sizes; got {w}x{h} for {path}.")
    rate = Fraction(fps).limit_denominator(1001)
    # constant rate: one tick per frame; variable rate: millisecond ticks
    time_base = Fraction(1, 1000) if pts is not None else 1 / rate
    with atomic_path(path) as tmp:
        out = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"} if faststart else {})
        try:
            stream = out.add_stream("libx264", rate=rate, options=dict(options or {}))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
            if rotation:
                stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
            for i, arr in enumerate(itertools.chain([first], frames)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[..., :3]), format="rgb24")
                frame.pts = int(round(pts[i] * 1000)) if pts is not None else i
                frame.time_base = time_base
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        finally:
            out.close()
    return path


def write_image(path: str | Path, array: np.ndarray, quality: int = 92) -> Path:
    """Write an RGB array as JPEG (or PNG for a .png name), atomically."""
    path = Path(path)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path


@dataclass
class SyntheticItem:
    """One generated file with its captions and the attributes they describe."""
    id: str
    path: Path
    captions: list[str]
    split: str
    attributes: dict = field(default_factory=dict)


def _item_rng(seed: int, tag: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, tag)) * 7919 + len(tag), index])


def _still(seed: int, index: int) -> Still:
    order = np.random.default_rng([seed, 1]).permutation(len(STILLS))  # balanced: cycle through all combos
    return STILLS[order[index % len(STILLS)]]


def _motion(seed: int, index: int) -> Motion:
    order = np.random.default_rng([seed, 2]).permutation(len(MOTIONS))
    return MOTIONS[order[index % len(MOTIONS)]]


def _make_image(path: Path, seed: int, index: int, size: tuple[int, int], split: str, item_id: str) -> SyntheticItem:
    still = _still(seed, index)
    rng = _item_rng(seed, "image", index)
    write_image(path, draw_still(still, rng, size))
    return SyntheticItem(item_id, path, still.captions(rng), split, asdict(still))


def _make_clip(path: Path, seed: int, index: int, size: tuple[int, int], fps: float, seconds: float,
               split: str, item_id: str) -> SyntheticItem:
    motion = _motion(seed, index)
    rng = _item_rng(seed, "video", index)
    n_frames = max(2, int(round(fps * seconds)))
    write_mp4(path, motion_frames(motion, rng, size, n_frames), fps)
    return SyntheticItem(item_id, path, motion.captions(rng), split, asdict(motion))


def make_msrvtt(root: str | Path, seed: int = 0, n_train: int = 12, n_val: int = 4, n_test: int = 4, *,
                size: tuple[int, int] = (128, 96), fps: float = 12, seconds: float = 2.0) -> list[SyntheticItem]:
    """MSR-VTT layout: `train_val_videodatainfo.json`, `test_videodatainfo.json`, `videos/video{i}.mp4`.

    Ids are contiguous as in the real split (train first, then validate, then test).
    """
    root = Path(root)
    splits = ["train"] * n_train + ["validate"] * n_val + ["test"] * n_test
    items, infos = [], {"trainval": ([], []), "test": ([], [])}
    sen_id = 0
    for i, split in enumerate(splits):
        vid = f"video{i}"
        item = _make_clip(root / "videos" / f"{vid}.mp4", seed, i, size, fps, seconds, split, vid)
        items.append(item)
        videos, sentences = infos["test" if split == "test" else "trainval"]
        videos.append({"category": i % 20, "url": f"https://www.youtube.com/watch?v=synthetic{i:05d}",
                       "video_id": vid, "start time": 0.0, "end time": float(seconds), "split": split, "id": i})
        for cap in item.captions:
            sentences.append({"caption": cap, "video_id": vid, "sen_id": sen_id})
            sen_id += 1
    info = {"contributor": "clipprefix.synthetic", "data_created": "2016-04-01 00:00:00", "version": "1.0",
            "description": f"synthetic MSR-VTT layout, seed {seed}", "year": "2016"}
    for name, key in (("train_val_videodatainfo.json", "trainval"), ("test_videodatainfo.json", "test")):
        videos, sentences = infos[key]
        atomic_write_text(root / name, json.dumps({"info": info, "videos": videos, "sentences": sentences}))
    return items


def make_coco_karpathy(root: str | Path, seed: int = 0, n_train: int = 16, n_restval: int = 4, n_val: int = 4,
                       n_test: int = 4, *, size: tuple[int, int] = (96, 96)) -> list[SyntheticItem]:
    """COCO Karpathy layout: `dataset_coco.json` + `train2014/` (train) and `val2014/` (restval/val/test)."""
    root = Path(root)
    splits = ["train"] * n_train + ["restval"] * n_restval + ["val"] * n_val + ["test"] * n_test
    images, items, sentid = [], [], 0
    for i, split in enumerate(splits):
        folder = "train2014" if split == "train" else "val2014"
        cocoid = 100000 + i * 7  # sparse ids, as in COCO
        filename = f"COCO_{folder}_{cocoid:012d}.jpg"
        item = _make_image(root / folder / filename, seed, i, size, split, str(cocoid))
        items.append(item)
        sentences = [{"tokens": c.split(), "raw": c, "imgid": i, "sentid": sentid + k}
                     for k, c in enumerate(item.captions)]
        images.append({"filepath": folder, "sentids": [s["sentid"] for s in sentences], "filename": filename,
                       "imgid": i, "split": split, "sentences": sentences, "cocoid": cocoid})
        sentid += len(sentences)
    atomic_write_text(root / "dataset_coco.json", json.dumps({"images": images, "dataset": "coco"}))
    return items


def make_flickr30k(root: str | Path, seed: int = 0, n: int = 30, *, size: tuple[int, int] = (96, 96)) -> list[SyntheticItem]:
    """Flickr30k as the seed reads it: `results.csv` ('|'-separated, leading spaces) + `flickr30k_images/`."""
    root = Path(root)
    lines, items = ["image_name| comment_number| comment"], []
    for i in range(n):
        name = f"{1000000000 + i * 131}.jpg"
        item = _make_image(root / "flickr30k_images" / name, seed, 10_000 + i, size, "all", name.removesuffix(".jpg"))
        items.append(item)
        lines += [f"{name}| {k}| {c}" for k, c in enumerate(item.captions)]
    atomic_write_text(root / "results.csv", "\n".join(lines) + "\n")
    return items


def make_user_folder(root: str | Path, seed: int = 0, n_images: int = 4, n_videos: int = 2, *,
                     captions_format: str = "csv", size: tuple[int, int] = (96, 96)) -> list[SyntheticItem]:
    """A user's folder: images and videos plus `captions.csv` (file,caption rows) or `captions.jsonl`
    ({"file", "captions"} lines)."""
    if captions_format not in ("csv", "jsonl"):
        raise ClipPrefixError(f"captions_format must be 'csv' or 'jsonl', not {captions_format!r}.")
    root = Path(root)
    items = [_make_image(root / f"img_{i:03d}.jpg", seed, 20_000 + i, size, "train", f"img_{i:03d}")
             for i in range(n_images)]
    items += [_make_clip(root / "clips" / f"clip_{i:03d}.mp4", seed, 20_000 + i, (128, 96), 12, 2.0, "train",
                         f"clips/clip_{i:03d}") for i in range(n_videos)]
    if captions_format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "caption"])
        for it in items:
            writer.writerows([[it.path.relative_to(root).as_posix(), c] for c in it.captions])
        atomic_write_text(root / "captions.csv", buf.getvalue())
    else:
        atomic_write_text(root / "captions.jsonl", "".join(
            json.dumps({"file": it.path.relative_to(root).as_posix(), "captions": it.captions}) + "\n" for it in items))
    return items


def make_all(root: str | Path, seed: int = 0, *, n_videos: int = 20, n_images: int = 28) -> dict[str, Path]:
    """Write every layout below `root` (`msrvtt/`, `coco/`, `flickr30k/`, `user/`); smoke sizes by default.

    `n_videos` splits 60/20/20 into MSR-VTT train/validate/test; `n_images` splits
    4/1/1/1 into Karpathy train/restval/val/test, and Flickr30k gets `n_images` too.
    """
    root = Path(root)
    nv_val = max(1, n_videos // 5)
    nv_test = max(1, n_videos // 5)
    make_msrvtt(root / "msrvtt", seed, max(1, n_videos - nv_val - nv_test), nv_val, nv_test)
    q = max(1, n_images // 7)
    make_coco_karpathy(root / "coco", seed, max(1, n_images - 3 * q), q, q, q)
    make_flickr30k(root / "flickr30k", seed, n_images)
    make_user_folder(root / "user", seed)
    return {name: root / name for name in ("msrvtt", "coco", "flickr30k", "user")}


# ------------------------------------------------------------------ one longer clip with scenes
@dataclass
class Scene:
    start: float   # seconds
    end: float     # seconds
    caption: str   # canonical caption of what the scene shows
    attributes: dict


@dataclass
class SyntheticVideo:
    path: Path
    duration: float
    fps: float
    scenes: list[Scene]

    @property
    def boundaries(self) -> list[float]:
        """Times (s) where a new scene starts, without the 0.0 of the first."""
        return [s.start for s in self.scenes[1:]]


def make_video(path: str | Path, seed: int = 0, *, n_scenes: int = 4, scene_seconds: float = 3.0,
               size: tuple[int, int] = (160, 120), fps: float = 15, motion: bool = False) -> SyntheticVideo:
    """One clip of `n_scenes` distinct scenes, each `scene_seconds` long (for the apps and the demo).

    Consecutive scenes differ in colour, shape and place, so a scene detector sees every cut. Still
    scenes (default) carry image captions ('a red circle on the left'); with `motion=True` each scene
    is a moving shape with a video caption ('a red circle moves from left to right').
    """
    rng = np.random.default_rng([seed, 3])
    per_scene = max(2, int(round(scene_seconds * fps)))
    scenes, chosen = [], []
    pool = MOTIONS if motion else STILLS
    for k in range(n_scenes):
        while True:
            cand = pool[int(rng.integers(len(pool)))]
            prev = chosen[-1] if chosen else None
            if prev is None or (cand.colour != prev.colour and cand.shape != prev.shape
                                and getattr(cand, "position", None) != getattr(prev, "position", 0)
                                and getattr(cand, "direction", None) != getattr(prev, "direction", 0)):
                break
        chosen.append(cand)
        start = k * per_scene / fps
        scenes.append(Scene(start, (k + 1) * per_scene / fps, cand.caption(), asdict(cand)))

    def frames():
        for k, cand in enumerate(chosen):
            srng = _item_rng(seed, "scene", k)
            grey = (30, 45) if k % 2 == 0 else (80, 95)   # alternate dark / lighter grey: every cut is a clear one
            if motion:
                yield from motion_frames(cand, srng, size, per_scene, grey=grey)
            else:
                still = draw_still(cand, srng, size, grey=grey)
                for _ in range(per_scene):
                    yield still

    write_mp4(path, frames(), fps)
    return SyntheticVideo(Path(path), n_scenes * per_scene / fps, fps, scenes)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Write the synthetic datasets (all layouts) below ROOT.")
    ap.add_argument("root")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--images", type=int, default=28)
    a = ap.parse_args()
    for name, p in make_all(a.root, a.seed, n_videos=a.videos, n_images=a.images).items():
        print(f"{name:10s} {p}")
