"""`clipprefix <command>`: thin wrappers over the library.

    clipprefix demo                                   # offline: synthetic data -> tiny captioner -> SRT/VTT/JSON
    clipprefix caption photo.jpg clip.mp4 --model clipcap-coco
    clipprefix extract / train / evaluate / live / convert / presets

Each subcommand lives beside the code it wraps (`add_<name>_parser(subparsers)` in that module) and
returns an exit code. Expected failures (`ClipPrefixError`) print one line and exit 2, no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..base.errors import ClipPrefixError

# (module, function that adds the subcommand's parser); modules that are not there yet are skipped.
SUBCOMMANDS = [
    ("demo", "add_demo_parser"),
    ("caption", "add_caption_parser"),
    ("..data.extract", "add_extract_parser"),
    ("..training.trainer", "add_train_parser"),
    ("..evaluation.evaluate", "add_evaluate_parser"),
    ("live", "add_live_parser"),
    ("cli", "add_convert_parser"),
    ("cli", "add_presets_parser"),
    ("cli", "add_push_parser"),
]


def add_convert_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert a ClipCap or clip-gpt-captioning .pt file into a checkpoint folder")
    p.add_argument("src", help="the .pt file")
    p.add_argument("out", help="the checkpoint folder to write")
    p.add_argument("--kind", default="auto", choices=["auto", "clipcap", "clip-gpt"])
    p.add_argument("--clip-model", default=None, help="open_clip architecture (default: from the feature size)")
    p.add_argument("--normalize", default=None, action=argparse.BooleanOptionalAction,
                   help="L2-normalise CLIP features before the mapper (default: MLP no, transformer yes)")
    p.set_defaults(func=run_convert)


def run_convert(args) -> int:
    from ..core.convert import convert_file

    options = {} if args.kind == "clip-gpt" else {"clip_model": args.clip_model, "normalize": args.normalize}
    out = convert_file(args.src, args.out, kind=args.kind, **options)
    print(f"wrote {out}")
    return 0


def add_presets_parser(sub) -> None:
    p = sub.add_parser("presets", help="list the named checkpoints and training configs")
    p.set_defaults(func=run_presets)


def run_presets(args) -> int:
    from ..core.presets import CONFIGS, PRESETS

    print("checkpoints (--model NAME):")
    for name, preset in PRESETS.items():
        print(f"  {name:20s} {preset.description}")
    print("training configs (clipprefix train --config NAME):")
    for name in CONFIGS:
        print(f"  {name}")
    return 0


def add_push_parser(sub) -> None:
    p = sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub")
    p.add_argument("checkpoint", help="a checkpoint folder")
    p.add_argument("repo_id", help="owner/name on the Hub")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=run_push)


def run_push(args) -> int:
    from ..core.captioner import Captioner

    print(Captioner.from_pretrained(args.checkpoint).push_to_hub(args.repo_id, private=args.private))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..base import __version__

    parser = argparse.ArgumentParser(prog="clipprefix", description="CLIP-prefix captioning of images and videos.")
    parser.add_argument("--version", action="version", version=f"clipprefix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, fn in SUBCOMMANDS:
        try:
            mod = importlib.import_module(module if module.startswith(".") else f".{module}", __package__)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(f"{__package__}.{module}"):
                continue        # subcommand not part of this build
            raise
        getattr(mod, fn)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ClipPrefixError as e:
        print(f"clipprefix {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clipprefix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
