"""Upload a checkpoint folder to the Hugging Face Hub, with a model card (README.md)."""
from __future__ import annotations

import argparse

from ...core.captioner import Captioner

HELP = "upload a checkpoint folder to the Hugging Face Hub"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a checkpoint folder")
    p.add_argument("repo_id", help="owner/name on the Hub")
    p.add_argument("--private", action="store_true")
    p.add_argument("--metrics", help="an evaluation's metrics.json (or its folder: `clipprefix evaluate --out`) "
                                     "whose scores go into the model card")
    p.add_argument("--replace-card", action="store_true", help="replace a model card already on the Hub")


def run(args) -> int:
    cap = Captioner.from_pretrained(args.checkpoint, device="cpu")
    print(cap.push_to_hub(args.repo_id, private=args.private, metrics=args.metrics, replace_card=args.replace_card))
    return 0
