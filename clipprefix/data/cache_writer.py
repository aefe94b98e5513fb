"""CLIP feature caches, write side: whole shards (tmp + rename), the index, the item list, the report, and
`merge` of the parts a sharded extraction wrote.

Every file is written to a temporary name and renamed, so a kill -9 leaves only whole shards; a rerun
finds the items already in shards and computes only the rest.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from ..base.errors import ClipPrefixError
from ..base.files import atomic_path, atomic_write_text
from ..core.encoder import SHORT_NAMES
from .cache import _SHARD_RE, FORMAT, FORMAT_VERSION, _canon, _read_index, _read_records


class Writer:
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
        if not self.recs:
            return
        name = f"shard-{self.next:05d}.safetensors"
        meta = {"format": FORMAT, "meta": _canon(self.index["meta"]), "items": json.dumps(self.recs)}
        with atomic_path(self.root / name) as tmp:
            save_file(self.buf, str(tmp), metadata=meta)
        self.next += 1
        self.index["shards"].append(name)
        self.index["n_items"] = self.index.get("n_items", 0) + len(self.recs)
        write_index(self.root, self.index)
        self.buf, self.recs, self.nbytes = {}, [], 0


def write_index(root: Path, index: dict) -> None:
    atomic_write_text(root / "index.json", json.dumps(index, indent=1))


def write_items(root: Path, records: list[dict]) -> None:
    with atomic_path(root / "items.jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


def open_or_create(root: Path, meta: dict, part: str | None, overwrite: bool) -> dict:
    index = _read_index(root)
    if index is not None and overwrite:
        for p in list(root.glob("shard-*.safetensors")) + [root / "items.jsonl", root / "report.json"]:
            p.unlink(missing_ok=True)
        index = None
    if index is not None:
        if _canon(index["meta"]) != _canon(meta):
            diff = sorted(k for k in set(meta) | set(index["meta"]) if _canon(meta.get(k)) != _canon(index["meta"].get(k)))
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


def write_report(root: Path, dataset: str, split: str, part, bad: list[dict]) -> None:
    atomic_write_text(root / "report.json", json.dumps(
        {"dataset": dataset, "split": split, "part": part, "n_bad": len(bad), "bad": bad}, indent=1))


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
    write_items(out, records)
    write_report(out, meta["dataset"], meta["split"], None, bad)
    write_index(out, {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta, "part": None,
                       "parts": [p.relative_to(out).as_posix() for p in parts], "complete": True,
                       "shards": shards, "n_items": len(records), "n_bad": len(bad)})
    return out
