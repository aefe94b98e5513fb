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
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..base.errors import ClipPrefixError
from ..base.files import atomic_write_text
from ..data.video_write import write_mp4
from .draw import draw_still, motion_frames, write_image
from .scenes import MOTIONS, STILLS, Motion, Still


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
