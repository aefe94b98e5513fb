"""Caption the items of a feature cache and write metrics.json, predictions.jsonl and predictions.csv.

    clipprefix evaluate --checkpoint runs/x/best --cache DIR [--split test] [--out DIR] [--strategy beam --num-beams 5] [--gallery]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ...base.devices import resolve_device
from ...evaluation.evaluate import default_out, evaluate
from ...evaluation.gallery import make_gallery

HELP = "caption a cached split and score it (BLEU, METEOR, ROUGE-L, CIDEr, CLIPScore)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "--checkpoint", dest="model", required=True, help="checkpoint folder, preset or Hub id")
    p.add_argument("--cache", required=True, help="feature cache of the split to score")
    p.add_argument("--split", help="items of this split (for caches made with --split all)")
    p.add_argument("--out", help="folder for the results (default: <checkpoint>_eval_<cache> beside a checkpoint "
                                 "folder, runs/eval/<name>_eval_<cache> for a preset or Hub id)")
    p.add_argument("--strategy", choices=["greedy", "beam", "sample"], help="default: the checkpoint's")
    p.add_argument("--num-beams", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="first N items only (smoke runs)")
    p.add_argument("--metrics", help="comma-separated subset of BLEU-1..4,METEOR,ROUGE-L,CIDEr (default: all)")
    p.add_argument("--no-clipscore", dest="clipscore", action="store_false")
    p.add_argument("--spice", default=None, action=argparse.BooleanOptionalAction,
                   help="run SPICE (default: only when it needs no download)")
    p.add_argument("--gallery", action="store_true", help="also write gallery.html (best and worst items)")
    p.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    args.out = args.out or str(default_out(args.model, args.cache))
    res = evaluate(args.model, args.cache, args.out, split=args.split, batch_size=args.batch_size, limit=args.limit,
                   clipscore=args.clipscore, spice=args.spice, device=device, strategy=args.strategy,
                   metrics=[m.strip() for m in args.metrics.split(",")] if args.metrics else None,
                   num_beams=args.num_beams, max_new_tokens=args.max_new_tokens)
    print(res.table())
    print(f"wrote {Path(args.out) / 'metrics.json'}, predictions.jsonl, predictions.csv")
    if args.gallery:
        print(f"wrote {make_gallery(args.out).html}")
    return 0
