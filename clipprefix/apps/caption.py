"""Captioning a list of image files in batches, one bad file failing alone (the image side of `clipprefix caption`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

from tqdm.auto import tqdm

from ..base.errors import ClipPrefixError
from ..core.images import open_image


def caption_image_files(captioner, paths: Sequence[Path], *, batch_size: int = 32, progress: bool | None = None,
                        **overrides) -> Iterator[tuple[Path, Any]]:
    """Yield (path, Caption) or (path, ClipPrefixError) per image, in order; images are opened one by
    one (a bad file fails alone) and captioned in batches."""
    with tqdm(total=len(paths), unit="img", desc="images", leave=False,
              disable=(not progress) if progress is not None else None) as bar:
        for i in range(0, len(paths), batch_size):
            good, results = [], {}
            for p in paths[i:i + batch_size]:
                try:
                    if Path(p).is_file() and Path(p).stat().st_size == 0:
                        raise ClipPrefixError(f"Image {p} is empty (0 bytes).")
                    good.append((p, open_image(p)))
                except ClipPrefixError as e:
                    results[p] = e
                except Exception as e:  # noqa: BLE001 - whatever breaks one file fails that file alone
                    results[p] = ClipPrefixError(f"Image {p} cannot be read ({type(e).__name__}: {e}).")
            caps = captioner.caption_images([im for _, im in good], batch_size=batch_size, **overrides) if good else []
            results.update({p: c for (p, _), c in zip(good, caps)})
            for p in paths[i:i + batch_size]:
                yield p, results[p]
            bar.update(len(paths[i:i + batch_size]))
