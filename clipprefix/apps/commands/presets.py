"""List the named checkpoints (`--model NAME`) and training configs (`train --config NAME`)."""
from __future__ import annotations

import argparse

from ...core import presets

HELP = "list the named checkpoints and training configs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args) -> int:
    print("checkpoints (--model NAME):")
    for name, description in presets.checkpoint_presets().items():
        print(f"  {name:20s} {description}")
    print("training configs (clipprefix train --config NAME):")
    for name in presets.config_names():
        print(f"  {name}")
    return 0
