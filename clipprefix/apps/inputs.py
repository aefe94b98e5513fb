"""What a user hands the apps on the command line: files, folders and glob patterns -> images and videos.

A file is an image or a video by its content (Pillow, then FFmpeg; the name only decides which is
asked first), so `.vob`, `.m2ts`, `.MTS`, `.ogv`, `.avif`, `.mpo` and misnamed files are taken as what
they are. A file neither recognises but named like an image or a video (an empty, cut or corrupt
photo.jpg) goes on as that, so its reader says what is wrong with it; files in a folder or a pattern
that are neither are skipped and counted (`Inputs.skipped`). Named pipes, devices and sockets are
never opened (reading one would block).
"""
from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..core.images import IMAGE_EXTS, is_image
from ..data.probe import is_video
from ..data.video_reader import VIDEO_EXTS


@dataclass
class Inputs:
    images: list[Path]
    videos: list[Path]
    errors: list[str]
    skipped: list[tuple[str, int]] = field(default_factory=list)   # (folder or pattern, files neither image nor video)


def kind_of(path: Path) -> str | None:
    """'image', 'video' or None, by what Pillow and FFmpeg make of the file's content (else by its name)."""
    path = Path(path)
    ext = path.suffix.lower()
    for kind in (("video", "image") if ext in VIDEO_EXTS else ("image", "video")):
        if (is_image if kind == "image" else is_video)(path):
            return kind
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def _regular(p: Path) -> bool:
    try:
        return stat.S_ISREG(p.stat().st_mode)
    except OSError:
        return False


def collect_inputs(args: Sequence[str]) -> Inputs:
    """Expand files, folders and glob patterns into image and video lists (deduplicated, in order)."""
    images, videos, errors, skipped, seen = [], [], [], [], set()

    def add(p: Path, k: str) -> None:
        if p.resolve() in seen:
            return
        seen.add(p.resolve())
        (images if k == "image" else videos).append(p)

    def add_all(where: str, candidates: list[Path]) -> int | None:
        """Add the images and videos among `candidates`; None when there were none, else the others' count."""
        kinds = [(q, kind_of(q)) for q in candidates]
        for q, k in kinds:
            if k is not None:
                add(q, k)
        others = sum(k is None for _, k in kinds)
        if others < len(kinds) and others:
            skipped.append((where, others))
        return others if others < len(kinds) else None

    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            files = [q for q in sorted(p.iterdir()) if _regular(q) and not q.name.startswith(".")]
            if add_all(str(p), files) is None:
                errors.append(f"Folder {p} has no images or videos"
                              + (f" ({len(files)} other file{'s' if len(files) > 1 else ''})." if files else "."))
        elif p.exists():
            if not _regular(p):
                what = "a named pipe" if stat.S_ISFIFO(p.stat().st_mode) else "a device or socket"
                errors.append(f"{p} is not a regular file ({what}).")
                continue
            k = kind_of(p)
            if k is None:
                errors.append(f"{p} is neither an image nor a video (Pillow and FFmpeg cannot read it).")
            else:
                add(p, k)
        elif glob.has_magic(arg):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(arg), recursive=True))]
            if add_all(arg, [m for m in matches if _regular(m)]) is None:
                errors.append(f"The pattern {arg} matches no images or videos.")
        else:
            errors.append(f"{p}: no such file or folder.")
    return Inputs(images, videos, errors, skipped)


def unique_name(stem: str, used: set[str]) -> str:
    """`stem`, or `stem-2`, `stem-3`, ... if it is taken in `used` (which gets the chosen name)."""
    name, k = stem, 2
    while name in used:
        name, k = f"{stem}-{k}", k + 1
    used.add(name)
    return name
