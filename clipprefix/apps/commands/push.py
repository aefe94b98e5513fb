"""Upload a checkpoint folder to the Hugging Face Hub."""
from __future__ import annotations

import argparse

from ...core.captioner import Captioner

HELP = "upload a checkpoint folder to the Hugging Face Hub"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a checkpoint folder")
    p.add_argument("repo_id", help="owner/name on the Hub")
    p.add_argument("--private", action="store_true")


def run(args) -> int:
    print(Captioner.from_pretrained(args.checkpoint).push_to_hub(args.repo_id, private=args.private))
    return 0
