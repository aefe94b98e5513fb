"""Every path the project uses derives from here, with environment overrides.

- `CLIPPREFIX_DATA`: data root (default `<repo>/data` in a checkout, else `~/clipprefix-data`),
  with `raw/` (read-only inputs), `interim/` and `processed/` (feature caches) below it.
- `CLIPPREFIX_CACHE`: cache for generated assets such as the tiny preset (default `~/.cache/clipprefix`).
- `CLIPPREFIX_SMOKE=1`: smoke mode for notebooks and tests (tiny preset, tiny synthetic data).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PACKAGE_DIR.parent


def _in_checkout() -> bool:
    return (REPO_DIR / "pyproject.toml").is_file() and (REPO_DIR / "clipprefix").is_dir()


def data_dir() -> Path:
    env = os.environ.get("CLIPPREFIX_DATA")
    if env:
        return Path(env).expanduser()
    return REPO_DIR / "data" if _in_checkout() else Path.home() / "clipprefix-data"


def cache_dir() -> Path:
    env = os.environ.get("CLIPPREFIX_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "clipprefix"
    base.mkdir(parents=True, exist_ok=True)
    return base


def checkpoints_dir() -> Path:
    env = os.environ.get("CLIPPREFIX_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    return REPO_DIR / "checkpoints" if _in_checkout() else cache_dir() / "checkpoints"


def smoke_mode() -> bool:
    """True when `CLIPPREFIX_SMOKE` is set to a true value (1/true/yes)."""
    return os.environ.get("CLIPPREFIX_SMOKE", "").strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on error delete it.

    Readers never see a half-written file, also after a crash or kill -9 (the rename is atomic
    on POSIX file systems when both names live in the same directory).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes owner-only files; give the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
