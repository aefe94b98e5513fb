"""`clipprefix <command>` (also `python -m clipprefix.cli` for torchrun): see `apps/cli.py`."""
from .apps.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
