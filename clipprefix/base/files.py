"""Atomic files and folders: readers see the old version or the new one, never half of one.

    with atomic_path("out/clip.srt") as tmp:      # write tmp; renamed over the target on success
        tmp.write_text(...)
    atomic_write_text("out/metrics.json", text)
    write_folder("ckpt/", fill)                   # fill(tmp_dir) writes the files; the folder is swapped in
    write_folder("cache/tiny/clip", fill, replace=False)   # build once: a folder already there is kept
    with build_lock("cache/presets/x"): ...       # concurrent first uses wait for one build (a file lock)

The rename is atomic on POSIX file systems when both names live in the same directory, so a crash or
kill -9 at any moment leaves either the old or the new content under the target name.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes owner-only files; give the usual permissions
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


def temporary_folder(prefix: str) -> Path:
    """A new temporary folder that is removed when this process exits (a notebook's smoke run leaves
    nothing behind in /tmp once its kernel stops)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


def recover_folder(path: str | os.PathLike) -> None:
    """Put back the previous copy of folder `path` if a kill came between `write_folder`'s two renames
    (the old folder moved aside, the new one not yet in place)."""
    path = Path(path)
    if not path.exists():
        olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            os.rename(olds[-1], path)


def build_lock(path: str | os.PathLike) -> FileLock:
    """An inter-process lock for building `path` (the file `.<name>.lock` beside it): a second process
    that wants the same build waits for the first instead of building it again. Released on exit, also
    when the holder dies (an OS file lock)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.parent / f".{path.name}.lock"))


def write_folder(path: str | os.PathLike, fill: Callable[[Path], None], *, replace: bool = True) -> Path:
    """Create folder `path` atomically: `fill(tmp_dir)` writes the files, then the folder is swapped in.

    With `replace=False` a folder that is already there is kept as it is: build-once caches, built under
    `build_lock` so that concurrent first uses wait for one build. Otherwise the old folder is moved
    aside and removed after the new one is in place; a kill between the two renames leaves the old one
    aside, and `recover_folder` (run by every load and save) puts it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path)
    if not replace:
        if path.is_dir():
            return path
        with build_lock(path):
            return path if path.is_dir() else _write_folder(path, fill, replace)
    return _write_folder(path, fill, replace)


def _write_folder(path: Path, fill: Callable[[Path], None], replace: bool) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())   # mkdtemp makes owner-only folders; give the usual permissions
    old = None
    try:
        fill(tmp)
        if path.exists() and replace:
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if replace or not path.is_dir():
                raise          # build once: another process won the race, and its folder is as good
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    return path
