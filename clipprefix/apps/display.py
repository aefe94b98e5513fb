"""Captioned images that render themselves in Jupyter (`_repr_html_`), for notebooks and the explorer.

    CaptionedImages(images, captions)      # a grid of thumbnails with their captions under them
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any, Sequence


def thumbnail_data_uri(image: Any, size: int = 192) -> str:
    """A PNG data URI of `image` (PIL, uint8 array or path) scaled to fit `size` pixels."""
    from PIL import Image

    from ..core.encoder import to_pil

    im = Image.open(image).convert("RGB") if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__") else to_pil(image)
    im = im.copy()
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class CaptionedImages:
    """Images with captions (strings or `Caption`s); shows as an HTML grid in notebooks."""

    def __init__(self, images: Sequence[Any], captions: Sequence[Any], *, size: int = 192):
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        self.images, self.captions, self.size = list(images), list(captions), size

    def __len__(self) -> int:
        return len(self.images)

    def _repr_html_(self) -> str:
        cells = []
        for im, cap in zip(self.images, self.captions):
            text = html.escape(getattr(cap, "text", str(cap)))
            score = getattr(cap, "score", None)
            extra = f"<br><small>score {score:.2f}</small>" if score is not None else ""
            cells.append(f'<figure style="display:inline-block;margin:4px;width:{self.size}px;vertical-align:top">'
                         f'<img src="{thumbnail_data_uri(im, self.size)}" style="max-width:100%"/>'
                         f'<figcaption style="font-size:13px">{text}{extra}</figcaption></figure>')
        return '<div class="clipprefix-captions">' + "".join(cells) + "</div>"

    def __repr__(self) -> str:
        return "\n".join(getattr(c, "text", str(c)) for c in self.captions)
