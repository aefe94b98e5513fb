"""`clipprefix <command>`: thin wrappers over the library, one module per command in `commands/`.

    clipprefix demo                                   # offline: synthetic data -> tiny captioner -> SRT/VTT/JSON
    clipprefix caption photo.jpg clip.mp4 --model clipcap-coco
    clipprefix extract / train / evaluate / live / convert / presets / push

A command module has `HELP` (one line), `add_arguments(parser)` and `run(args) -> exit code`; only the
command being run is imported (torch, transformers and open_clip take seconds to load, and
`clipprefix --help` should not wait for them), and it is imported inside `main`'s error handling, so a
Ctrl-C during start-up ends like one later. Expected failures (`ClipPrefixError`) print one line and
exit 2, no traceback; Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..base import __version__
from ..base.errors import ClipPrefixError

COMMANDS = {    # name -> one-line help (kept here so that --help imports no command)
    "demo": "offline demo: synthetic data -> train a tiny captioner -> SRT/VTT/JSON",
    "caption": "caption images (printed) and videos (SRT/VTT/JSON files)",
    "extract": "write CLIP feature caches for a dataset split",
    "train": "train a captioner on CLIP feature caches",
    "evaluate": "caption a cached split and score it (BLEU, METEOR, ROUGE-L, CIDEr, CLIPScore)",
    "live": "real-time captions from a webcam, file or stream",
    "convert": "convert a ClipCap or clip-gpt-captioning .pt file into a checkpoint folder",
    "presets": "list the named checkpoints and training configs",
    "push": "upload a checkpoint folder to the Hugging Face Hub",
}


def command_module(name: str):
    """The module that implements command `name` (imported on first use)."""
    return importlib.import_module(f"{__package__}.commands.{name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s own arguments are filled in (the others show their help line)."""
    parser = argparse.ArgumentParser(prog="clipprefix", description="CLIP-prefix captioning of images and videos.")
    parser.add_argument("--version", action="version", version=f"clipprefix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_line in COMMANDS.items():
        if name == command:
            mod = command_module(name)
            p = sub.add_parser(name, help=help_line, description=mod.__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
            mod.add_arguments(p)
            p.set_defaults(func=mod.run)
        else:
            sub.add_parser(name, help=help_line)
    return parser


def _command_in(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    try:
        parser = build_parser(command if command in COMMANDS else None)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except ClipPrefixError as e:
        print(f"clipprefix {command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clipprefix {command}: interrupted", file=sys.stderr)
        return 130
