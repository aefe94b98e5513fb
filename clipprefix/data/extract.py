"""CLIP feature caches: `extract` writes them, `FeatureCache` reads them (training and evaluation need nothing else).

    clipprefix extract --dataset msrvtt --root data/raw/msrvtt --split train --sampling uniform:16
    clipprefix extract --dataset coco --root data/raw/coco --split train --model ViT-B-32 --pretrained openai
    cache = FeatureCache.open(path, encoder=enc.spec)     # raises if it was made by another encoder
    cache.features("video7") -> (T, D) fp16; cache.timestamps("video7") -> (T,) s; cache.captions("video7")

A cache is a folder: `shard-00000.safetensors`, ... (per item `features/<id>` (T, D) fp16 and
`timestamps/<id>` (T,) float32 seconds; the shard's own header lists its items with their captions,
split and source file), `index.json` (what made the cache: encoder spec, frame sampling, dataset,
split, package version; checked on load and on resume), `items.jsonl` (written when complete) and
`report.json` (items that could not be read, with the reason).

Every file is written to a temporary name and renamed, so a kill -9 leaves only whole shards; a rerun
finds the items already in shards and computes only the rest. Decoding runs in worker threads (PyAV
and PIL release the GIL) while the main thread runs CLIP on batches of frames.

Scale-out: `--shard i/n` (or torchrun's RANK / WORLD_SIZE) makes process i write `OUT/parts/iofn/`
over every n-th item; `clipprefix extract --merge --out OUT` then writes one index over all parts
without copying a byte of features.
- MSR-VTT (10k clips x 16 frames = 160k CLIP images): one process. On a 2-core CPU ViT-B/32 costs
  about 0.5 s per clip in fp32 and 0.25-0.35 s in bf16 (the default `--dtype auto` where the CPU has
  bf16 units: features within cosine 0.9999 of fp32's), so the train split takes under an hour; on a
  GPU (fp16 by default, like OpenAI's `clip.load`) decoding is the limit, so raise `--workers` to the
  CPU cores.
- WebVid-sized (10M clips): one process per GPU, all with the same --out on a shared file system,
  e.g. `torchrun --nnodes N --nproc-per-node 8 -m clipprefix.cli extract ... --device cuda`, or array
  jobs with `--shard $TASK/$NTASKS`; a killed part resumes where it stopped; merge once at the end.
  Keep `--shard-items` at a few thousand so the shard count stays in the thousands.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from safetensors import SafetensorError

from . import datasets as ds
from ..base import paths
from . import video
from ..base.errors import ClipPrefixError

FORMAT = "clipprefix-features"
FORMAT_VERSION = 1
_SHARD_RE = re.compile(r"^shard-(\d+)\.safetensors$")


def _version() -> str:
    from ..base import __version__
    return __version__


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------ reading
@dataclass
class CacheItem:
    id: str
    features: "torch.Tensor"     # (T, D) float16  # noqa: F821
    timestamps: "torch.Tensor"   # (T,) float32 seconds  # noqa: F821
    captions: list[str]
    split: str


class FeatureCache:
    """Read-only view of a feature cache folder (images are T = 1)."""

    def __init__(self, root: Path, index: dict, records: list[dict]):
        self.root = root
        self.index = index
        self.meta: dict = index["meta"]
        self._rec = {r["id"]: r for r in records}
        if len(self._rec) != len(records):
            raise ClipPrefixError(f"Feature cache {root} lists an item twice; re-run `clipprefix extract --merge`.")
        self.ids: list[str] = [r["id"] for r in records]
        self._handles: OrderedDict = OrderedDict()   # shard file -> open safetensors handle (LRU)

    # -- opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, encoder: dict | None = None, sampling: str | None = None,
             dataset: str | None = None, split: str | None = None, allow_partial: bool = False) -> "FeatureCache":
        """Open a cache; every expectation given (an encoder spec or `ClipEncoder`, sampling, dataset,
        split) must match what made it, else `ClipPrefixError`. Unfinished caches open only with
        `allow_partial=True`."""
        root = Path(path)
        index = _read_index(root)
        if index is None and (root / "parts").is_dir():
            raise ClipPrefixError(f"Feature cache {root} has parts that are not merged; when all are done run "
                                  f"`clipprefix extract --merge --out {root}`.")
        if index is None:
            raise ClipPrefixError(f"{root} is not a feature cache (no index.json); create it with `clipprefix extract`.")
        if not index.get("complete") and not allow_partial:
            raise ClipPrefixError(f"Feature cache {root} is unfinished; rerun the same `clipprefix extract` "
                                  "to complete it, or pass allow_partial=True.")
        cache = cls(root, index, _read_records(root, index))
        cache.check(encoder=encoder, sampling=sampling, dataset=dataset, split=split)
        return cache

    def check(self, *, encoder=None, sampling=None, dataset=None, split=None) -> None:
        """Raise `ClipPrefixError` unless the cache was made with these settings (None: not checked)."""
        spec = getattr(encoder, "spec", encoder)
        if spec is not None and _canon(spec) != _canon(self.meta["encoder"]):
            raise ClipPrefixError(
                f"Feature cache {self.root} was made with CLIP {_describe(self.meta['encoder'])}, not "
                f"{_describe(spec)}; extract features again for this encoder.")
        if sampling is not None and str(video.parse_policy(sampling)) != self.meta["sampling"]:
            raise ClipPrefixError(f"Feature cache {self.root} samples frames by {self.meta['sampling']}, "
                                  f"not {video.parse_policy(sampling)}; extract again with that sampling.")
        for key, want in (("dataset", dataset), ("split", split)):
            if want is not None and want != self.meta[key]:
                raise ClipPrefixError(f"Feature cache {self.root} holds {key} '{self.meta[key]}', not '{want}'.")

    # -- access
    @property
    def spec(self) -> dict:
        """The encoder spec the features were made with."""
        return self.meta["encoder"]

    @property
    def embed_dim(self) -> int:
        return int(self.meta["encoder"]["embed_dim"])

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._rec

    def _tensor(self, item_id: str, kind: str):
        from safetensors import safe_open

        try:
            rec = self._rec[item_id]
        except KeyError:
            raise ClipPrefixError(f"Feature cache {self.root} has no item '{item_id}'.") from None
        file = rec["shard"]
        h = self._handles.get(file)
        if h is None:
            try:
                h = safe_open(str(self.root / file), framework="pt")
            except (OSError, SafetensorError) as e:
                raise ClipPrefixError(f"Feature cache shard {self.root / file} cannot be read ({e}).") from e
            self._handles[file] = h
            if len(self._handles) > 32:   # keep few files open on WebVid-sized caches
                self._handles.popitem(last=False)
        else:
            self._handles.move_to_end(file)
        return h.get_tensor(f"{kind}/{item_id}")

    def features(self, item_id: str):
        """(T, D) float16 CLIP features of one item."""
        return self._tensor(item_id, "features")

    def timestamps(self, item_id: str):
        """(T,) float32 presentation times (s) of the frames (0.0 for an image)."""
        return self._tensor(item_id, "timestamps")

    def captions(self, item_id: str) -> list[str]:
        return list(self._rec[item_id]["captions"])

    def split_of(self, item_id: str) -> str:
        return self._rec[item_id]["split"]

    def source(self, item_id: str) -> str:
        """The file the item was read from (as given to `extract`)."""
        return self._rec[item_id]["path"]

    def item(self, item_id: str) -> CacheItem:
        return CacheItem(item_id, self.features(item_id), self.timestamps(item_id), self.captions(item_id),
                         self.split_of(item_id))

    def __iter__(self) -> Iterator[CacheItem]:
        for i in self.ids:
            yield self.item(i)

    def padded(self, ids: Sequence[str] | None = None, max_frames: int | None = None):
        """Stack items as (N, T, D) float16 features + (N, T) bool mask (True = real frame)."""
        import torch

        ids = list(self.ids if ids is None else ids)
        feats = [self.features(i)[:max_frames] if max_frames else self.features(i) for i in ids]
        t = max((f.shape[0] for f in feats), default=0)
        out = torch.zeros(len(ids), t, self.embed_dim, dtype=torch.float16)
        mask = torch.zeros(len(ids), t, dtype=torch.bool)
        for k, f in enumerate(feats):
            out[k, :f.shape[0]] = f
            mask[k, :f.shape[0]] = True
        return out, mask

    def __repr__(self) -> str:
        m = self.meta
        return (f"FeatureCache({str(self.root)!r}: {len(self)} items of {m['dataset']}/{m['split']}, "
                f"{_describe(m['encoder'])}, {m['sampling']})")


def _describe(spec: dict) -> str:
    return (f"{spec.get('model')}/{spec.get('pretrained')}" + (" (QuickGELU)" if spec.get("activation") == "quick_gelu" else "")
            + (" (L2-normalised)" if spec.get("normalize") else ""))


def _read_index(root: Path) -> dict | None:
    p = root / "index.json"
    if not p.is_file():
        return None
    try:
        index = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ClipPrefixError(f"{p} is not valid JSON; the cache is damaged, extract it again.") from e
    if index.get("format") != FORMAT:
        raise ClipPrefixError(f"{p} is not a clipprefix feature index.")
    if index.get("format_version") != FORMAT_VERSION:
        raise ClipPrefixError(f"Feature cache {root} has format version {index.get('format_version')}, this "
                              f"clipprefix reads version {FORMAT_VERSION}; extract it again.")
    return index


def _shard_records(path: Path, rel: str) -> list[dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError) as e:
        raise ClipPrefixError(f"Feature cache shard {path} cannot be read ({e}).") from e
    recs = json.loads(meta.get("items", "[]"))
    for r in recs:
        r["shard"] = rel
    return recs


def _read_records(root: Path, index: dict) -> list[dict]:
    items = root / "items.jsonl"
    if index.get("complete") and items.is_file():
        with open(items, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    return [r for s in index.get("shards", []) for r in _shard_records(root / s, s)]


# ------------------------------------------------------------------ writing
class _Writer:
    """Buffers finished items and writes them as whole shards (tmp + rename), then the index."""

    def __init__(self, root: Path, index: dict, shard_items: int, shard_bytes: int = 256 << 20):
        self.root, self.index = root, index
        self.shard_items, self.shard_bytes = shard_items, shard_bytes
        self.buf: dict = {}
        self.recs: list[dict] = []
        self.nbytes = 0
        existing = [int(m.group(1)) for p in root.glob("shard-*.safetensors") if (m := _SHARD_RE.match(p.name))]
        self.next = max(existing, default=-1) + 1

    def add(self, rec: dict, feats, ts) -> None:
        self.buf[f"features/{rec['id']}"] = feats.contiguous()
        self.buf[f"timestamps/{rec['id']}"] = ts.contiguous()
        self.recs.append(rec)
        self.nbytes += feats.numel() * feats.element_size()
        if len(self.recs) >= self.shard_items or self.nbytes >= self.shard_bytes:
            self.flush()

    def flush(self) -> None:
        from safetensors.torch import save_file

        if not self.recs:
            return
        name = f"shard-{self.next:05d}.safetensors"
        meta = {"format": FORMAT, "meta": _canon(self.index["meta"]), "items": json.dumps(self.recs)}
        with paths.atomic_path(self.root / name) as tmp:
            save_file(self.buf, str(tmp), metadata=meta)
        self.next += 1
        self.index["shards"].append(name)
        self.index["n_items"] = self.index.get("n_items", 0) + len(self.recs)
        _write_index(self.root, self.index)
        self.buf, self.recs, self.nbytes = {}, [], 0


def _write_index(root: Path, index: dict) -> None:
    paths.atomic_write_text(root / "index.json", json.dumps(index, indent=1))


def _write_items(root: Path, records: list[dict]) -> None:
    with paths.atomic_path(root / "items.jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


@dataclass
class ExtractResult:
    path: Path                    # the folder written (a part folder when sharded)
    n_items: int                  # items in this (part of the) split
    n_done_before: int            # already in the cache when this run started
    n_encoded: int                # computed by this run
    bad: list[dict] = field(default_factory=list)   # [{"id", "path", "reason"}]
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.n_done_before + self.n_encoded + len(self.bad) == self.n_items


def _decode_errors() -> tuple:
    """What a broken input file can raise while decoding; anything else (CUDA, bugs) stops the run."""
    import av
    return (ClipPrefixError, av.FFmpegError, OSError, ValueError, EOFError, MemoryError)


def _load_item(item: ds.Item, policy: video.Sampling, enc, short_side: int | None, max_frames: int):
    """Worker: decode and preprocess one item -> (pixels (T, 3, S, S), timestamps (T,))."""
    import torch
    from PIL import Image

    if not item.path.is_file():
        raise ClipPrefixError(f"{item.path} does not exist.")
    if item.kind == "video":
        frames = list(video.sample(item.path, policy, short_side=short_side, max_frames=max_frames, workers=1))
        return enc.preprocess([f.image for f in frames]), torch.tensor([f.time for f in frames], dtype=torch.float32)
    try:
        with Image.open(item.path) as im:
            im = im.convert("RGB")
    except (OSError, Image.DecompressionBombError) as e:   # UnidentifiedImageError is an OSError
        raise ClipPrefixError(f"Image {item.path} cannot be read ({e}).") from e
    return enc.preprocess([im]), torch.zeros(1, dtype=torch.float32)


def _open_or_create(root: Path, meta: dict, part: str | None, overwrite: bool) -> dict:
    index = _read_index(root)
    if index is not None and overwrite:
        for p in list(root.glob("shard-*.safetensors")) + [root / "items.jsonl", root / "report.json"]:
            p.unlink(missing_ok=True)
        index = None
    if index is not None:
        if _canon(index["meta"]) != _canon(meta):
            diff = sorted(k for k in set(meta) | set(index["meta"]) if _canon(meta.get(k)) != _canon(index["meta"].get(k)))
            from ..core.encoder import SHORT_NAMES
            was = {str(d).removeprefix("torch."): s for d, s in SHORT_NAMES.items()}.get(index["meta"].get("compute_dtype"))
            hint = f": it was computed in {was}, pass --dtype {was} to resume it" if diff == ["compute_dtype"] and was else ""
            raise ClipPrefixError(f"{root} holds a feature cache made with other settings ({', '.join(diff)} differ"
                                  f"{hint}); use another --out or --overwrite.")
        # a kill between a shard's rename and the index update: trust the shards on disk
        index["shards"] = sorted(p.name for p in root.glob("shard-*.safetensors") if _SHARD_RE.match(p.name))
    else:
        stray = [p for p in root.glob("shard-*.safetensors")]
        if stray:
            raise ClipPrefixError(f"{root} has feature shards but no index.json; remove them or use another --out.")
        index = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta, "part": part,
                 "complete": False, "shards": []}
    for tmp in root.glob(".*.tmp"):          # leftovers of a killed run: never renamed, so never valid
        tmp.unlink(missing_ok=True)
    index["complete"] = False
    return index


def extract(dataset: str, root: str | os.PathLike, out: str | os.PathLike, *, split: str = "train",
            encoder=None, model: str = "ViT-B-32", pretrained: str | None = "openai", device: str = "cpu",
            dtype="auto", normalize: bool = False, sampling: str | video.Sampling = "uniform:16",
            batch_size: int = 64, workers: int = 2, shard: tuple[int, int] = (0, 1), shard_items: int = 512,
            fast_resize: bool = True, max_frames: int = 256, limit: int | None = None, overwrite: bool = False,
            progress: bool = True) -> ExtractResult:
    """Write (or complete) the CLIP feature cache of one dataset split in `out`.

    `encoder` is a `ClipEncoder` (else one is loaded from model/pretrained/device/dtype/normalize; dtype
    'auto' is bf16 on CPUs with bf16 units and fp16 on CUDA, see `encoders.resolve_dtype`).
    `sampling` picks video frames ('uniform:16', 'every:2', 'fps:1', 'scenes'); images give T = 1.
    `shard=(i, n)` processes every n-th item into `out/parts/iofn` (merge them with `merge(out)`).
    `fast_resize` lets libswscale shrink video frames to the encoder's size while converting them
    (recorded in the metadata); `max_frames` bounds T for fixed-rate and scene sampling.
    Unreadable items are skipped and listed in `report.json`; see `ExtractResult.bad`.
    """
    import torch
    from tqdm.auto import tqdm

    name = ds.dataset_name(ds.detect(root)) if dataset == "auto" else ds.dataset_name(dataset)
    policy = video.parse_policy(sampling)
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ClipPrefixError(f"--shard must be i/n with 0 <= i < n, got {i}/{n}.")
    if encoder is None:
        from ..core.encoder import ClipEncoder
        encoder = ClipEncoder.load(model, pretrained, device=device, dtype=dtype, normalize=normalize)
    meta = {"encoder": encoder.spec, "compute_dtype": str(getattr(encoder, "dtype", torch.float32)).replace("torch.", ""),
            "sampling": str(policy), "frame_resize": "swscale-bicubic" if fast_resize else "pil",
            "max_frames": max_frames, "dataset": name, "split": ds.split_name(split),
            "dtype": "float16", "package": {"name": "clipprefix", "version": _version()}}
    out = Path(out)
    part_dir = out / "parts" / f"{i}of{n}" if n > 1 else out
    index = _open_or_create(part_dir, meta, f"{i}/{n}" if n > 1 else None, overwrite)   # refuses other settings
    t0 = time.time()   # items/s counts reading + encoding, not loading the model
    items = ds.load(name, root, split)
    if limit:
        items = items[:limit]
    items = items[i::n]
    part_dir.mkdir(parents=True, exist_ok=True)
    done = {r["id"] for s in index["shards"] for r in _shard_records(part_dir / s, s)}
    index["n_items"] = len(done)
    index["limit"] = limit   # a subset for smoke runs: recorded, but not part of what the features mean
    _write_index(part_dir, index)
    todo = [it for it in items if it.id not in done]
    writer = _Writer(part_dir, index, shard_items)
    short_side = int(encoder.spec["preprocess"]["size"]) if fast_resize else None
    bad: list[dict] = []
    result = ExtractResult(part_dir, len(items), len(done & {it.id for it in items}), 0, bad)

    pending: list = []    # (item, pixels, timestamps) waiting for a CLIP batch
    n_frames = 0

    def encode_pending() -> None:
        nonlocal pending, n_frames
        if not pending:
            return
        pixels = torch.cat([p for _, p, _ in pending])
        feats = torch.cat([encoder.encode_pixels(pixels[k:k + batch_size])
                           for k in range(0, len(pixels), batch_size)]).to("cpu", torch.float16)
        start = 0
        for item, p, ts in pending:
            rec = {"id": item.id, "T": int(len(p)), "captions": list(item.captions), "split": item.split,
                   "path": str(item.path), "kind": item.kind}
            writer.add(rec, feats[start:start + len(p)].clone(), ts)
            start += len(p)
            bar.update(1)
        result.n_encoded += len(pending)
        pending, n_frames = [], 0

    bar = tqdm(total=len(todo), unit="item", desc=f"extract {name}/{split}" + (f" part {i}/{n}" if n > 1 else ""),
               disable=not progress, dynamic_ncols=True)
    window: deque = deque()
    source = iter(todo)
    decode_errors = _decode_errors()
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode") as pool:
        def submit() -> bool:
            it = next(source, None)
            if it is None:
                return False
            window.append((it, pool.submit(_load_item, it, policy, encoder, short_side, max_frames)))
            return True

        for _ in range(max(2, 4 * workers)):   # bounded read-ahead: memory stays flat
            if not submit():
                break
        try:
            while window:
                item, fut = window.popleft()
                submit()
                try:
                    pixels, ts = fut.result()
                except decode_errors as e:
                    bad.append({"id": item.id, "path": str(item.path), "reason": str(e)})
                    bar.update(1)
                    bar.set_postfix(bad=len(bad))
                    continue
                pending.append((item, pixels, ts))
                n_frames += len(pixels)
                if n_frames >= batch_size:
                    encode_pending()
            encode_pending()
            writer.flush()
        except KeyboardInterrupt:
            writer.flush()   # finished items are worth keeping; the shard is written whole or not at all
            raise
        finally:
            for _, fut in window:
                fut.cancel()
            bar.close()
            _write_report(part_dir, name, split, index.get("part"), bad)

    records = [r for s in index["shards"] for r in _shard_records(part_dir / s, s)]
    _write_items(part_dir, records)
    index["complete"] = True
    index["n_items"] = len(records)
    index["n_bad"] = len(bad)
    _write_index(part_dir, index)
    result.seconds = time.time() - t0
    return result


def _write_report(root: Path, dataset: str, split: str, part, bad: list[dict]) -> None:
    paths.atomic_write_text(root / "report.json", json.dumps(
        {"dataset": dataset, "split": split, "part": part, "n_bad": len(bad), "bad": bad}, indent=1))


# ------------------------------------------------------------------ merging parts
def merge(out: str | os.PathLike) -> Path:
    """Write `out/index.json` + `items.jsonl` + `report.json` over the parts in `out/parts/` (all n must be
    complete and made with the same settings). Shards stay where they are."""
    out = Path(out)
    parts = sorted((out / "parts").glob("*of*"))
    if not parts:
        raise ClipPrefixError(f"{out} has no parts/ to merge; extract with --shard i/n first.")
    indexes = {}
    for p in parts:
        idx = _read_index(p)
        if idx is None or not idx.get("complete"):
            raise ClipPrefixError(f"Part {p} is unfinished; rerun its `clipprefix extract --shard {p.name.replace('of', '/')}`.")
        indexes[p] = idx
    ns = {int(p.name.split("of")[1]) for p in parts}
    if len(ns) != 1:
        raise ClipPrefixError(f"{out}/parts mixes shardings ({', '.join(sorted(p.name for p in parts))}).")
    n = ns.pop()
    missing = sorted(set(range(n)) - {int(p.name.split("of")[0]) for p in parts})
    if missing:
        raise ClipPrefixError(f"{out} lacks parts {', '.join(f'{k}/{n}' for k in missing)}; extract them before merging.")
    metas = {_canon(idx["meta"]) for idx in indexes.values()}
    if len(metas) != 1:
        raise ClipPrefixError(f"The parts in {out}/parts were made with different settings; extract them again alike.")
    records, shards, bad, seen = [], [], [], set()
    for p, idx in indexes.items():
        rel = p.relative_to(out).as_posix()
        shards += [f"{rel}/{s}" for s in idx["shards"]]
        for r in _read_records(p, idx):
            if r["id"] in seen:
                raise ClipPrefixError(f"Item {r['id']} is in two parts of {out}; the parts overlap.")
            seen.add(r["id"])
            records.append(dict(r, shard=f"{rel}/{r['shard']}"))
        rep = p / "report.json"
        if rep.is_file():
            bad += json.loads(rep.read_text(encoding="utf-8")).get("bad", [])
    meta = next(iter(indexes.values()))["meta"]
    _write_items(out, records)
    _write_report(out, meta["dataset"], meta["split"], None, bad)
    _write_index(out, {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta, "part": None,
                       "parts": [p.relative_to(out).as_posix() for p in parts], "complete": True,
                       "shards": shards, "n_items": len(records), "n_bad": len(bad)})
    return out


# ------------------------------------------------------------------ CLI
def default_out(dataset: str, split: str, model: str, sampling: str) -> Path:
    """Caches are named by what made them: data/processed/features/<dataset>_<split>_<model>_<sampling>."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{dataset}_{split}_{model}_{sampling}").strip("-")
    return paths.data_dir() / "processed" / "features" / slug.replace("-_", "_")


def _parse_shard(text: str | None) -> tuple[int, int]:
    if text:
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ClipPrefixError(f"--shard takes i/n (e.g. 0/4), not '{text}'.") from None
        return i, n
    # torchrun / SLURM-style launchers
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def add_extract_parser(subparsers) -> None:
    p = subparsers.add_parser("extract", help="write CLIP feature caches for a dataset split",
                              description="Write (or resume) the CLIP feature cache of a dataset split; "
                                          "with --merge, join the parts written with --shard.")
    p.add_argument("--dataset", default="auto", help="msrvtt | coco | flickr30k | folder | auto (from the files)")
    p.add_argument("--root", help="dataset folder (default: data/raw/<dataset>)")
    p.add_argument("--split", default="train", help="train | val | test | all")
    p.add_argument("--out", help="cache folder (default: data/processed/features/<dataset>_<split>_<model>_<sampling>)")
    p.add_argument("--model", default="ViT-B-32", help="open_clip model name, or 'tiny'")
    p.add_argument("--pretrained", default="openai", help="open_clip pretrained tag or weights file")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the features")
    p.add_argument("--sampling", default="uniform:16", help="video frames: uniform:N | every:S | fps:F | scenes[:T]")
    p.add_argument("--max-frames", type=int, default=256, help="cap on frames per video for every:/fps:/scenes")
    p.add_argument("--batch-size", type=int, default=64, help="frames per CLIP batch")
    p.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2))), help="decode threads")
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:1 | auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="CLIP compute dtype; auto: fp16 on CUDA, bf16 on CPUs with bf16 units, else fp32")
    p.add_argument("--shard", help="i/n: process every n-th item into OUT/parts/iofn (default: RANK/WORLD_SIZE)")
    p.add_argument("--shard-items", type=int, default=512, help="items per shard file")
    p.add_argument("--limit", type=int, help="only the first N items (smoke runs)")
    p.add_argument("--no-fast-resize", dest="fast_resize", action="store_false",
                   help="convert frames at full size and resize in PIL only")
    p.add_argument("--overwrite", action="store_true", help="discard an existing cache in --out")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any item could not be read")
    p.add_argument("--merge", action="store_true", help="merge OUT/parts/* into one cache and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_extract)


def run_extract(args: argparse.Namespace) -> int:
    import torch

    name = "auto" if args.dataset == "auto" else ds.dataset_name(args.dataset)
    root = Path(args.root) if args.root else paths.data_dir() / "raw" / (name if name != "auto" else "")
    if name == "auto":
        name = ds.detect(root)
    out = Path(args.out) if args.out else default_out(name, args.split, args.model, args.sampling)
    if args.merge:
        print(f"merged {merge(out)}")
        return 0
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:   # torchrun: one GPU per process
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    dtype = args.dtype
    res = extract(name, root, out, split=args.split, model=args.model, pretrained=args.pretrained or None,
                  device=device, dtype=dtype, normalize=args.normalize, sampling=args.sampling,
                  batch_size=args.batch_size, workers=args.workers, shard=_parse_shard(args.shard),
                  shard_items=args.shard_items, fast_resize=args.fast_resize, max_frames=args.max_frames,
                  limit=args.limit, overwrite=args.overwrite, progress=not args.quiet)
    rate = res.n_encoded / res.seconds if res.seconds else 0.0
    print(f"{res.path}: {res.n_done_before + res.n_encoded}/{res.n_items} items "
          f"({res.n_encoded} new, {rate:.1f} items/s), {len(res.bad)} unreadable"
          + (f" (listed in {res.path / 'report.json'})" if res.bad else ""))
    if _parse_shard(args.shard)[1] > 1:
        print(f"when every part is done: clipprefix extract --merge --out {out}")
    return 1 if (args.strict and res.bad) else 0
