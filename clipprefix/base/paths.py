"""Every path the project uses derives from here, with environment overrides.

- `CLIPPREFIX_DATA`: data root (default `<repo>/data` in a checkout, `/content/clipprefix/data` on
  Colab, else `~/clipprefix-data`), with `raw/` (read-only inputs), `interim/` and `processed/`
  (feature caches) below it.
- `CLIPPREFIX_CACHE`: cache for generated assets such as the tiny preset (default `~/.cache/clipprefix`).
- `CLIPPREFIX_CHECKPOINTS`: trained captioners (default `<repo>/checkpoints` in a checkout,
  `/content/clipprefix/checkpoints` on Colab).
- `CLIPPREFIX_SMOKE=1`: smoke mode for notebooks and tests (tiny preset, tiny synthetic data).

On Colab the defaults lie under /content, which its file browser shows; like the whole runtime they
are gone when it is recycled: to keep them, mount Google Drive and set e.g.
`CLIPPREFIX_DATA=/content/drive/MyDrive/clipprefix/data` (and CLIPPREFIX_CHECKPOINTS) first.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent     # clipprefix/
REPO_DIR = PACKAGE_DIR.parent


COLAB_HOME = Path("/content/clipprefix")      # Colab's working folder (its file browser's root is /content)


def _in_checkout() -> bool:
    return (REPO_DIR / "pyproject.toml").is_file() and (REPO_DIR / "clipprefix").is_dir()


def on_colab() -> bool:
    """True in a Google Colab runtime (its module is loaded, or its runtime's environment says so)."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def data_dir() -> Path:
    env = os.environ.get("CLIPPREFIX_DATA")
    if env:
        return Path(env).expanduser()
    if _in_checkout():
        return REPO_DIR / "data"
    return COLAB_HOME / "data" if on_colab() else Path.home() / "clipprefix-data"


def cache_dir() -> Path:
    env = os.environ.get("CLIPPREFIX_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "clipprefix"
    base.mkdir(parents=True, exist_ok=True)
    return base


def checkpoints_dir() -> Path:
    env = os.environ.get("CLIPPREFIX_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    if _in_checkout():
        return REPO_DIR / "checkpoints"
    return COLAB_HOME / "checkpoints" if on_colab() else cache_dir() / "checkpoints"


def env_flag(name: str, default: bool = False) -> bool:
    """A boolean environment variable: 1/true/yes/on, 0/false/no/off, else `default`."""
    value = os.environ.get(name, "").strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    return default


def smoke_mode() -> bool:
    """True when `CLIPPREFIX_SMOKE` is set to a true value (1/true/yes/on)."""
    return env_flag("CLIPPREFIX_SMOKE")
