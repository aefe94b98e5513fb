"""Convert a published checkpoint (ClipCap or clip-gpt-captioning `.pt`) into a checkpoint folder.

    clipprefix convert coco_weights.pt checkpoints/clipcap-coco              # ClipCap MLP or transformer .pt
    clipprefix convert model.pt checkpoints/clip-gpt-S --kind clip-gpt       # clip-gpt-captioning S/L .pt
"""
from __future__ import annotations

import argparse

from ...core.convert import KINDS, convert_file

HELP = "convert a ClipCap or clip-gpt-captioning .pt file into a checkpoint folder"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="the .pt file")
    p.add_argument("out", help="the checkpoint folder to write")
    p.add_argument("--kind", default="auto", choices=list(KINDS))
    p.add_argument("--clip-model", default=None, help="open_clip architecture (default: from the feature size)")
    p.add_argument("--normalize", default=None, action=argparse.BooleanOptionalAction,
                   help="L2-normalise CLIP features before the mapper (default: MLP no, transformer yes)")


def run(args) -> int:
    options = {} if args.kind == "clip-gpt" else {"clip_model": args.clip_model, "normalize": args.normalize}
    print(f"wrote {convert_file(args.src, args.out, kind=args.kind, **options)}")
    return 0
