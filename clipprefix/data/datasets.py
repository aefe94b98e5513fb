"""Readers for MSR-VTT, COCO Karpathy, Flickr30k and a user's folder -> `Item(id, path, captions, split)`.

    items = datasets.load("msrvtt", root, split="train")    # 6,513 clips, ~20 captions each
    items = datasets.load("coco", root, split="train")      # Karpathy train + restval (113,287 images)
    items = datasets.load(datasets.detect(root), root, "all")

    python -m clipprefix.data.datasets ROOT [SPLIT]               # detects the layout, prints counts

Splits are named `train`, `val`, `test` (MSR-VTT's `validate` is `val`) or `all`. Readers check the
annotation files (missing file or bad JSON: `ClipPrefixError`) and that at least one listed media file
exists; single missing media files are left to `features.extract`, which lists them in its report.
Layouts and field names are the real datasets' (REFERENCE.md section 3).
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..base.errors import ClipPrefixError
from ..core.images import IMAGE_EXTS
from .video_reader import VIDEO_EXTS

SPLITS = ("train", "val", "test", "all")
_SPLIT_ALIASES = {"validate": "val", "validation": "val", "valid": "val", "dev": "val", "restval": "train"}


@dataclass
class Item:
    id: str
    path: Path
    captions: list[str] = field(default_factory=list)
    split: str = "train"

    @property
    def kind(self) -> str:
        """'video' or 'image', from the file extension."""
        return "video" if self.path.suffix.lower() in VIDEO_EXTS else "image"


def split_name(name: str) -> str:
    """Normalise a split name (`validate` -> `val`, `restval` -> `train`); unknown names raise."""
    s = _SPLIT_ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if s not in SPLITS:
        raise ClipPrefixError(f"Unknown split '{name}'; use one of {', '.join(SPLITS)}.")
    return s


def _read_json(path: Path) -> dict | list:
    if not path.is_file():
        raise ClipPrefixError(f"Annotation file {path} does not exist.")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ClipPrefixError(f"Annotation file {path} is not valid JSON (line {e.lineno}: {e.msg}).") from e
    except UnicodeDecodeError as e:
        raise ClipPrefixError(f"Annotation file {path} is not UTF-8 text.") from e


def _field(obj: dict, key: str, path: Path):
    if not isinstance(obj, dict) or key not in obj:
        raise ClipPrefixError(f"Annotation file {path} lacks the field '{key}'; is it the right file?")
    return obj[key]


def _require_media(items: list[Item], where: Path, what: str) -> list[Item]:
    if items and not any(it.path.exists() for it in items):   # stops at the first file that exists
        raise ClipPrefixError(f"None of the {len(items)} {what} files listed for {where} exist "
                              f"(first expected at {items[0].path}).")
    return items


# ------------------------------------------------------------------ MSR-VTT
_MSRVTT_VIDEO_DIRS = ("videos/all", "videos", "TrainValVideo", "TestVideo", "MSRVTT/videos/all", "MSRVTT/videos", ".")


def _index_videos(root: Path) -> tuple[dict[str, Path], Path]:
    """Map video stems (`video123`) to files, looking in the folders the known releases use."""
    found: dict[str, Path] = {}
    first_dir = None
    for sub in _MSRVTT_VIDEO_DIRS:
        d = root / sub
        if not d.is_dir():
            continue
        with os.scandir(d) as it:
            for e in it:
                stem, ext = os.path.splitext(e.name)
                if ext.lower() in VIDEO_EXTS and stem not in found:
                    found[stem] = Path(e.path)
                    first_dir = first_dir or d
    return found, first_dir or root / "videos"


def read_msrvtt(root: str | Path, split: str = "train") -> list[Item]:
    """MSR-VTT from `train_val_videodatainfo.json` / `test_videodatainfo.json`; all captions kept, in
    `sen_id` order; split from each video's `split` field (train / validate / test)."""
    root, split = Path(root), split_name(split)
    files = {"train": ["train_val_videodatainfo.json"], "val": ["train_val_videodatainfo.json"],
             "test": ["test_videodatainfo.json"],
             "all": ["train_val_videodatainfo.json", "test_videodatainfo.json"]}[split]
    videos, sentences = [], []
    for name in files:
        data = _read_json(root / name)
        videos += _field(data, "videos", root / name)
        sentences += _field(data, "sentences", root / name)
    caps: dict[str, list[tuple[int, str]]] = {}
    for k, s in enumerate(sentences):
        caps.setdefault(s["video_id"], []).append((s.get("sen_id", k), str(s["caption"]).strip()))
    found, video_dir = _index_videos(root)
    items, seen = [], set()
    for v in videos:
        vid, vsplit = v["video_id"], split_name(v.get("split", "train"))
        if (split != "all" and vsplit != split) or vid in seen:
            continue
        seen.add(vid)
        path = found.get(vid, video_dir / f"{vid}.mp4")
        items.append(Item(vid, path, [c for _, c in sorted(caps.get(vid, []))], vsplit))
    items.sort(key=lambda it: (len(it.id), it.id))   # video2 before video10
    return _require_media(items, root, "MSR-VTT video")


# ------------------------------------------------------------------ COCO Karpathy (and Karpathy's Flickr json)
def _read_karpathy(path: Path, image_root: Path, split: str, restval: bool, id_key: str) -> list[Item]:
    data = _read_json(path)
    items = []
    for im in _field(data, "images", path):
        raw = str(im.get("split", "train"))
        s = split_name(raw)
        if raw == "restval" and not restval:
            continue
        if split != "all" and s != split:
            continue
        p = image_root / im.get("filepath", "") / im["filename"]
        caps = [str(x.get("raw", " ".join(x.get("tokens", [])))).strip() for x in im.get("sentences", [])]
        items.append(Item(str(im.get(id_key, im.get("imgid", Path(im["filename"]).stem))), p, caps, s))
    return items


def read_coco_karpathy(root: str | Path, split: str = "train", restval: bool = True) -> list[Item]:
    """COCO with Karpathy's splits from `dataset_coco.json`; `train` includes `restval` unless told not to.
    Ids are the COCO ids (`cocoid`); images under each entry's `filepath` (`train2014/`, `val2014/`)."""
    root = Path(root)
    items = _read_karpathy(root / "dataset_coco.json", root, split_name(split), restval, "cocoid")
    return _require_media(items, root, "COCO image")


# ------------------------------------------------------------------ Flickr30k
def _parse_results_csv(path: Path) -> dict[str, list[str]]:
    """`image_name| comment_number| comment`, values with a leading space; a few rows of the common
    Kaggle copy lack the second '|' ('name| 4 A dog ...'), which this reads too."""
    if not path.is_file():
        raise ClipPrefixError(f"Annotation file {path} does not exist.")
    caps: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
        if "|" not in header or "image_name" not in header:
            raise ClipPrefixError(f"{path} is not a Flickr30k results.csv (expected the header 'image_name| comment_number| comment').")
        for line in f:
            parts = [p.strip() for p in line.rstrip("\n").split("|", 2)]
            if len(parts) == 2 and " " in parts[1]:
                parts = [parts[0], *parts[1].split(" ", 1)]
            if len(parts) != 3 or not parts[0] or not parts[2]:
                continue
            caps.setdefault(parts[0], []).append(parts[2])
    if not caps:
        raise ClipPrefixError(f"{path} has no caption rows.")
    return caps


def read_flickr30k(root: str | Path, split: str = "train") -> list[Item]:
    """Flickr30k from `results.csv` + `flickr30k_images/`. Splits come from Karpathy's
    `dataset_flickr30k.json` when it lies beside; otherwise, with images sorted by name, the last
    n/31 are test and the n/31 before them val (Karpathy's proportions: 29,000 / 1,014 / 1,000)."""
    root, split = Path(root), split_name(split)
    image_dir = root / "flickr30k_images"
    if (root / "dataset_flickr30k.json").is_file() and not (root / "results.csv").is_file():
        return _require_media(_read_karpathy(root / "dataset_flickr30k.json", image_dir, split, True, "imgid"),
                              root, "Flickr30k image")
    caps = _parse_results_csv(root / "results.csv")
    if (root / "dataset_flickr30k.json").is_file():
        karpathy = {im["filename"]: split_name(im.get("split", "train"))
                    for im in _field(_read_json(root / "dataset_flickr30k.json"), "images", root / "dataset_flickr30k.json")}
    else:
        karpathy = {}
    names = sorted(caps)
    k = max(1, round(len(names) / 31)) if len(names) >= 3 else 0
    items = []
    for i, name in enumerate(names):
        s = karpathy.get(name) or ("test" if i >= len(names) - k else "val" if i >= len(names) - 2 * k else "train")
        if split == "all" or s == split:
            items.append(Item(Path(name).stem, image_dir / name, caps[name], s))
    return _require_media(items, root, "Flickr30k image")


# ------------------------------------------------------------------ a user's folder
_FILE_COLS = ("file", "path", "filename", "image", "video", "image_name")
_CAPTION_COLS = ("caption", "text", "captions", "comment")


def _media_files(root: Path) -> Iterable[Path]:
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTS | IMAGE_EXTS and not p.name.startswith("."):
            yield p


def read_folder(root: str | Path, split: str = "all") -> list[Item]:
    """Images and videos in `root` with captions from `captions.csv` (columns `file,caption[,split]`, one
    row per caption) or `captions.jsonl` (`{"file": ..., "captions": [...], "split": ...}` per line). Without
    a caption file every image/video below `root` is an item with no captions (for extraction and
    inference). Items without a split are `train`. Ids are paths relative to `root`, without extension."""
    root, split = Path(root), split_name(split)
    if not root.is_dir():
        raise ClipPrefixError(f"Folder {root} does not exist.")
    entries: dict[str, dict] = {}

    def add(file: str, captions: list[str], s: str | None, where: str) -> None:
        if not file:
            raise ClipPrefixError(f"{where} has an entry without a file name.")
        e = entries.setdefault(file, {"captions": [], "split": None})
        e["captions"] += [c.strip() for c in captions if c and c.strip()]
        e["split"] = e["split"] or (split_name(s) if s else None)

    csv_path, jsonl_path = root / "captions.csv", root / "captions.jsonl"
    if csv_path.is_file():
        with open(csv_path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower(): c for c in reader.fieldnames or []}
            fcol = next((cols[c] for c in _FILE_COLS if c in cols), None)
            ccol = next((cols[c] for c in _CAPTION_COLS if c in cols), None)
            if fcol is None or ccol is None:
                raise ClipPrefixError(f"{csv_path} needs a header with a file column ({', '.join(_FILE_COLS)}) "
                                      f"and a caption column ({', '.join(_CAPTION_COLS)}).")
            for row in reader:
                add((row.get(fcol) or "").strip(), [row.get(ccol) or ""], row.get(cols.get("split", ""), None), str(csv_path))
    elif jsonl_path.is_file():
        with open(jsonl_path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ClipPrefixError(f"{jsonl_path} line {n} is not valid JSON ({e.msg}).") from e
                if not isinstance(rec, dict):
                    raise ClipPrefixError(f"{jsonl_path} line {n} is not a JSON object.")
                caps = rec.get("captions", rec.get("caption", []))
                file = next((rec[c] for c in _FILE_COLS if c in rec), "")
                add(str(file), [caps] if isinstance(caps, str) else list(caps), rec.get("split"), f"{jsonl_path} line {n}")
    else:
        for p in _media_files(root):
            add(p.relative_to(root).as_posix(), [], None, str(root))
        if not entries:
            raise ClipPrefixError(f"Folder {root} has no images or videos and no captions.csv / captions.jsonl.")
    items = []
    for file, e in entries.items():
        p = Path(file) if os.path.isabs(file) else root / file
        rel = Path(file) if not os.path.isabs(file) else Path(p.name)
        s = e["split"] or "train"
        if split == "all" or s == split:
            items.append(Item(rel.with_suffix("").as_posix(), p, e["captions"], s))
    return _require_media(items, root, "image/video")


# ------------------------------------------------------------------ dispatch
READERS = {"msrvtt": read_msrvtt, "coco": read_coco_karpathy, "flickr30k": read_flickr30k, "folder": read_folder}
_ALIASES = {"msr-vtt": "msrvtt", "msr_vtt": "msrvtt", "coco-karpathy": "coco", "karpathy": "coco",
            "coco_karpathy": "coco", "flickr": "flickr30k", "flickr30k-karpathy": "flickr30k", "user": "folder"}


def dataset_name(name: str) -> str:
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in READERS:
        raise ClipPrefixError(f"Unknown dataset '{name}'; use one of {', '.join(READERS)} (or 'auto').")
    return key


def detect(root: str | Path) -> str:
    """Which layout `root` holds, from the annotation files present."""
    root = Path(root)
    if not root.is_dir():
        raise ClipPrefixError(f"Dataset folder {root} does not exist.")
    if (root / "train_val_videodatainfo.json").is_file() or (root / "test_videodatainfo.json").is_file():
        return "msrvtt"
    if (root / "dataset_coco.json").is_file():
        return "coco"
    if (root / "results.csv").is_file() or (root / "dataset_flickr30k.json").is_file():
        return "flickr30k"
    return "folder"


def load(name: str, root: str | Path, split: str = "train", **kwargs) -> list[Item]:
    """Items of dataset `name` ('msrvtt', 'coco', 'flickr30k', 'folder' or 'auto') under `root`."""
    key = detect(root) if name == "auto" else dataset_name(name)
    return READERS[key](root, split, **kwargs)


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2:
        sys.exit("usage: python -m clipprefix.data.datasets ROOT [SPLIT]")
    kind = detect(sys.argv[1])
    its = load(kind, sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "all")
    print(f"{kind}: {len(its)} items, {sum(len(i.captions) for i in its)} captions")
    for s in SPLITS[:3]:
        print(f"  {s:5s} {sum(i.split == s for i in its)}")
