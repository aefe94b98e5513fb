"""What a user hands the apps on the command line: files, folders and glob patterns -> images and videos."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..core.images import IMAGE_EXTS
from ..data.video_reader import VIDEO_EXTS


@dataclass
class Inputs:
    images: list[Path]
    videos: list[Path]
    errors: list[str]


def kind_of(path: Path) -> str | None:
    ext = path.suffix.lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def collect_inputs(args: Sequence[str]) -> Inputs:
    """Expand files, folders and glob patterns into image and video lists (deduplicated, in order)."""
    images, videos, errors, seen = [], [], [], set()

    def add(p: Path, explicit: bool):
        k = kind_of(p)
        if k is None:
            if explicit:
                errors.append(f"{p} is neither an image ({', '.join(sorted(IMAGE_EXTS))}) nor a video "
                              f"({', '.join(sorted(VIDEO_EXTS))}).")
            return
        if p.resolve() in seen:
            return
        seen.add(p.resolve())
        (images if k == "image" else videos).append(p)

    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            found = [q for q in sorted(p.iterdir()) if q.is_file() and kind_of(q) and not q.name.startswith(".")]
            if not found:
                errors.append(f"Folder {p} has no images or videos.")
            for q in found:
                add(q, False)
        elif p.exists():
            add(p, True)
        elif glob.has_magic(arg):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(arg), recursive=True))]
            matches = [m for m in matches if m.is_file() and kind_of(m)]
            if not matches:
                errors.append(f"The pattern {arg} matches no images or videos.")
            for m in matches:
                add(m, False)
        else:
            errors.append(f"{p}: no such file or folder.")
    return Inputs(images, videos, errors)


def unique_name(stem: str, used: set[str]) -> str:
    """`stem`, or `stem-2`, `stem-3`, ... if it is taken in `used` (which gets the chosen name)."""
    name, k = stem, 2
    while name in used:
        name, k = f"{stem}-{k}", k + 1
    used.add(name)
    return name
