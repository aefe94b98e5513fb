"""the whole pipeline offline, on synthetic data, in minutes.

    clipprefix demo                        # -> outputs/demo/
    clipprefix demo --out /tmp/demo --epochs 6

1. generate a synthetic COCO-style image dataset (shapes with captions) and a 12 s video of 4 scenes;
2. extract the tiny CLIP features of the images;
3. train the tiny captioner on them (about a minute on a laptop CPU);
4. caption the video, one segment per second, into SRT / WebVTT / JSON, with captioned key frames;
5. score the captioner on the val split (BLEU, CIDEr, CLIPScore; needs Java) with a gallery of its best and
   worst captions, check each scene's caption against what was drawn, and say where everything is.

Nothing is downloaded: the tiny preset (CLIP tower, GPT-2, tokenizer) is built from local code.
The real use afterwards: `clipprefix caption my_video.mp4` with the published ClipCap weights.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ...base.errors import ClipPrefixError
from .. import demo
from ..demo import DEFAULT_OUT
from ..options import check_writable

HELP = "offline demo: synthetic data -> train a tiny captioner -> SRT/VTT/JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--images", type=int, default=384, help="synthetic training images (default 384)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars or training log")


def run(args) -> int:
    if args.epochs < 1 or args.images < 8:
        raise ClipPrefixError(f"The demo needs --epochs >= 1 and --images >= 8, got {args.epochs} and {args.images}.")
    check_writable(Path(args.out), "output folder")
    demo.run(args.out, epochs=args.epochs, n_train=args.images, seed=args.seed, progress=not args.quiet)
    return 0
