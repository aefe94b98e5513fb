"""Write (or resume) the CLIP feature cache of a dataset split; with --merge, join the parts written with --shard.

    clipprefix extract --dataset msrvtt --root data/raw/msrvtt --split train --sampling uniform:16
    torchrun --nproc-per-node 8 -m clipprefix.cli extract ... --device cuda     # one part per process
    clipprefix extract --merge --out OUT
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ...base.devices import resolve_device
from ...base.errors import ClipPrefixError
from ...base.paths import data_dir
from ...data import datasets
from ...data.cache_writer import merge
from ...data.extract import default_out, extract

HELP = "write CLIP feature caches for a dataset split"


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


def add_arguments(p: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    name = "auto" if args.dataset == "auto" else datasets.dataset_name(args.dataset)
    root = Path(args.root) if args.root else data_dir() / "raw" / (name if name != "auto" else "")
    if name == "auto":
        name = datasets.detect(root)
    out = Path(args.out) if args.out else default_out(name, args.split, args.model, args.sampling)
    if args.merge:
        print(f"merged {merge(out)}")
        return 0
    device = resolve_device(args.device)       # torchrun: one GPU per process
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
