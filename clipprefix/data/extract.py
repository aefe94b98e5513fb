"""`extract`: write (or complete) the CLIP feature cache of one dataset split.

    clipprefix extract --dataset msrvtt --root data/raw/msrvtt --split train --sampling uniform:16
    clipprefix extract --dataset coco --root data/raw/coco --split train --model ViT-B-32 --pretrained openai

Decoding runs in worker threads (PyAV and PIL release the GIL) while the main thread runs CLIP on
batches of frames; finished items go to whole shards (`cache_writer.py`), so an interrupted extract,
even killed with -9, goes on where it stopped when run again.

Scale-out: `--shard i/n` (or torchrun's RANK / WORLD_SIZE) makes process i write `OUT/parts/iofn/`
over every n-th item; `clipprefix extract --merge --out OUT` then writes one index over all parts
without copying a byte of features.
- MSR-VTT (10k clips x 16 frames = 160k CLIP images): one process; on a 2-core CPU the train split
  takes under an hour (ViT-B/32 in bf16 where the CPU has bf16 units: `--dtype auto`, features within
  cosine 0.9999 of fp32's); on a GPU (fp16 by default, like OpenAI's `clip.load`) decoding is the
  limit, so raise `--workers` to the CPU cores.
- WebVid-sized (10M clips): one process per GPU, all with the same --out on a shared file system,
  e.g. `torchrun --nnodes N --nproc-per-node 8 -m clipprefix.cli extract ... --device cuda`, or array
  jobs with `--shard $TASK/$NTASKS`; a killed part resumes where it stopped; merge once at the end.
  Keep `--shard-items` at a few thousand so the shard count stays in the thousands.
"""
from __future__ import annotations

import os
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..base import __version__, paths
from ..base.errors import ClipPrefixError
from ..core.encoder import ClipEncoder
from ..core.images import to_pil
from . import datasets as ds
from . import sampling as sampling_mod
from . import video
from .cache import _shard_records
from .cache_writer import Writer, open_or_create, write_index, write_items, write_report


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
    return (ClipPrefixError, av.FFmpegError, OSError, ValueError, EOFError, MemoryError)


def _load_item(item: ds.Item, policy: sampling_mod.Sampling, enc, short_side: int | None, max_frames: int):
    """Worker: decode and preprocess one item -> (pixels (T, 3, S, S), timestamps (T,))."""
    if not item.path.is_file():
        raise ClipPrefixError(f"{item.path} does not exist.")
    if item.kind == "video":
        frames = list(video.sample(item.path, policy, short_side=short_side, max_frames=max_frames, workers=1))
        return enc.preprocess([f.image for f in frames]), torch.tensor([f.time for f in frames], dtype=torch.float32)
    try:
        with Image.open(item.path) as im:
            im = to_pil(im)                 # as displayed: EXIF orientation, depth, transparency on white
    except (OSError, Image.DecompressionBombError) as e:   # UnidentifiedImageError is an OSError
        raise ClipPrefixError(f"Image {item.path} cannot be read ({e}).") from e
    return enc.preprocess([im]), torch.zeros(1, dtype=torch.float32)


def extract(dataset: str, root: str | os.PathLike, out: str | os.PathLike, *, split: str = "train",
            encoder=None, model: str = "ViT-B-32", pretrained: str | None = "openai", device: str = "cpu",
            dtype="auto", normalize: bool = False, sampling: str | sampling_mod.Sampling = "uniform:16",
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
    name = ds.dataset_name(ds.detect(root)) if dataset == "auto" else ds.dataset_name(dataset)
    policy = sampling_mod.parse_policy(sampling)
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ClipPrefixError(f"--shard must be i/n with 0 <= i < n, got {i}/{n}.")
    if encoder is None:
        encoder = ClipEncoder.load(model, pretrained, device=device, dtype=dtype, normalize=normalize)
    meta = {"encoder": encoder.spec, "compute_dtype": str(getattr(encoder, "dtype", torch.float32)).replace("torch.", ""),
            "sampling": str(policy), "frame_resize": "swscale-bicubic" if fast_resize else "pil",
            "max_frames": max_frames, "dataset": name, "split": ds.split_name(split),
            "dtype": "float16", "package": {"name": "clipprefix", "version": __version__}}
    out = Path(out)
    part_dir = out / "parts" / f"{i}of{n}" if n > 1 else out
    index = open_or_create(part_dir, meta, f"{i}/{n}" if n > 1 else None, overwrite)   # refuses other settings
    t0 = time.time()   # items/s counts reading + encoding, not loading the model
    items = ds.load(name, root, split)
    if limit:
        items = items[:limit]
    items = items[i::n]
    part_dir.mkdir(parents=True, exist_ok=True)
    done = {r["id"] for s in index["shards"] for r in _shard_records(part_dir / s, s)}
    index["n_items"] = len(done)
    index["limit"] = limit   # a subset for smoke runs: recorded, but not part of what the features mean
    write_index(part_dir, index)
    todo = [it for it in items if it.id not in done]
    writer = Writer(part_dir, index, shard_items)
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
            write_report(part_dir, name, split, index.get("part"), bad)

    records = [r for s in index["shards"] for r in _shard_records(part_dir / s, s)]
    write_items(part_dir, records)
    index["complete"] = True
    index["n_items"] = len(records)
    index["n_bad"] = len(bad)
    write_index(part_dir, index)
    result.seconds = time.time() - t0
    return result


def default_out(dataset: str, split: str, model: str, sampling: str) -> Path:
    """Caches are named by what made them: data/processed/features/<dataset>_<split>_<model>_<sampling>."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{dataset}_{split}_{model}_{sampling}").strip("-")
    return paths.data_dir() / "processed" / "features" / slug.replace("-_", "_")
