"""CLIP feature caches, read side: `FeatureCache` (training and evaluation need nothing else).

    cache = FeatureCache.open(path, encoder=enc.spec)     # raises if it was made by another encoder
    cache.features("video7") -> (T, D) fp16; cache.timestamps("video7") -> (T,) s; cache.captions("video7")

A cache is a folder: `shard-00000.safetensors`, ... (per item `features/<id>` (T, D) fp16 and
`timestamps/<id>` (T,) float32 seconds; the shard's own header lists its items with their captions,
split and source file), `index.json` (what made the cache: encoder spec, frame sampling, dataset,
split, package version; checked on load and on resume), `items.jsonl` (written when complete) and
`report.json` (items that could not be read, with the reason). `extract.py` writes caches
(`cache_writer.py` the files), `merge` joins the parts of a sharded extraction.
"""
from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from safetensors import SafetensorError, safe_open

from ..base.errors import ClipPrefixError
from . import sampling as sampling_mod


FORMAT = "clipprefix-features"
FORMAT_VERSION = 1
_SHARD_RE = re.compile(r"^shard-(\d+)\.safetensors$")


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass
class CacheItem:
    id: str
    features: torch.Tensor     # (T, D) float16
    timestamps: torch.Tensor   # (T,) float32 seconds
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
        if sampling is not None and str(sampling_mod.parse_policy(sampling)) != self.meta["sampling"]:
            raise ClipPrefixError(f"Feature cache {self.root} samples frames by {self.meta['sampling']}, "
                                  f"not {sampling_mod.parse_policy(sampling)}; extract again with that sampling.")
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


def stack_frames(feats: list[torch.Tensor], n: int | None) -> torch.Tensor:
    """(T_i, D) tensors -> (N, T, D); items are resampled uniformly to `n` frames (default: the
    most common T) when their frame counts differ or `n` is given."""
    counts = [f.shape[0] for f in feats]
    if n is None:
        if len(set(counts)) == 1:
            return torch.stack(feats)
        n = max(set(counts), key=counts.count)
    return torch.stack([f[torch.linspace(0, f.shape[0] - 1, n).round().long()] for f in feats])
