"""Train a mapper (and optionally the LM) on a feature cache; under torchrun the same command trains with DDP.

    clipprefix train --cache DIR [--val-cache DIR] --config tiny --out runs/x --epochs 8
    torchrun --nproc-per-node 8 -m clipprefix.cli train ...
"""
from __future__ import annotations

import argparse
import os
from dataclasses import fields

from ...training.config import TrainConfig
from ...training.trainer import train

HELP = "train a captioner on CLIP feature caches"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", required=True, help="training feature cache (clipprefix extract)")
    p.add_argument("--val-cache", help="validation feature cache (default: the cache's val items, if any)")
    p.add_argument("--config", dest="init", default="tiny",
                   help="config for a fresh model (tiny, tiny-video, clipcap-mlp, clipcap-transformer, "
                        "msrvtt-video) or a checkpoint to go on from")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=40, help="per process and micro-batch")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, help="peak learning rate (default: tiny 1e-3, GPT-2 configs 2e-5)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, help="default: 5%% of the run")
    p.add_argument("--grad-clip", type=float, default=1.0, help="0 turns clipping off")
    p.add_argument("--train-lm", default=None, action=argparse.BooleanOptionalAction,
                   help="fine-tune the LM too (default: tiny yes, clipcap-mlp yes, others no)")
    p.add_argument("--prefix-length", type=int, help="mapper prefix length K (fresh models)")
    p.add_argument("--num-layers", type=int, help="mapper layers (fresh transformer/video mappers)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, help="truncate captions to N tokens")
    p.add_argument("--num-frames", type=int, help="resample video items to N frames")
    p.add_argument("--save-every-steps", type=int, help="also save a resumable state every N steps")
    p.add_argument("--keep-checkpoints", type=int, default=3)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    p.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project")
    p.add_argument("--resume", action="store_true", help="go on from the newest state in --out")
    p.add_argument("--stop-after-steps", type=int, help="stop (saving a state) after N optimizer steps")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (default: 1 for the tiny configs, else torch's)")
    p.add_argument("--quiet", dest="verbose", action="store_false", help="no training log")


def run(args: argparse.Namespace) -> int:
    known = {f.name for f in fields(TrainConfig)}
    kw = {k: v for k, v in vars(args).items() if k in known}
    kw["mapper"] = {k: v for k, v in (("prefix_length", args.prefix_length), ("num_layers", args.num_layers)) if v}
    kw["grad_clip"] = args.grad_clip or None
    res = train(TrainConfig(**kw))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best checkpoint: {res.best_checkpoint}" + ("" if res.finished else f" (stopped at step {res.global_step})"))
    return 0
