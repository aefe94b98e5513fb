"""Results that render themselves in Jupyter (`_repr_html_`): captioned images, decoding comparisons.

    CaptionedImages(images, captions)      # a grid of thumbnails with their captions under them
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Any, Sequence

from ..base.notebook import caption_html
from ..core.images import open_image, to_pil


def thumbnail_data_uri(image: Any, size: int = 192) -> str:
    """A PNG data URI of `image` (PIL, uint8 array or path) scaled to fit `size` pixels."""
    im = to_pil(open_image(image)).copy()
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
            text = caption_html(getattr(cap, "text", str(cap)))
            score = getattr(cap, "score", None)
            extra = f"<br><small>score {score:.2f}</small>" if score is not None else ""
            cells.append(f'<figure style="display:inline-block;margin:4px;width:{self.size}px;vertical-align:top">'
                         f'<img src="{thumbnail_data_uri(im, self.size)}" style="max-width:100%"/>'
                         f'<figcaption style="font-size:13px">{text}{extra}</figcaption></figure>')
        return '<div class="clipprefix-captions">' + "".join(cells) + "</div>"

    def __repr__(self) -> str:
        return "\n".join(getattr(c, "text", str(c)) for c in self.captions)


@dataclass
class DecodingComparison:
    """Captions of the same images under several decoding settings (a table in notebooks)."""
    images: list[Any]
    settings: dict[str, dict]
    captions: dict[str, list]          # setting name -> one Caption per image

    def _repr_html_(self) -> str:
        head = "<tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in self.settings) + "</tr>"
        rows = []
        for i, im in enumerate(self.images):
            cells = "".join(f"<td style='max-width:16em'>{caption_html(self.captions[n][i].text)}<br><small>"
                            f"{self.captions[n][i].score:.2f}</small></td>" for n in self.settings)
            rows.append(f'<tr><td><img src="{thumbnail_data_uri(im, 96)}"></td>{cells}</tr>')
        return f"<table>{head}{''.join(rows)}</table>"


def compare_decoding(captioner, images: Sequence[Any], settings: dict[str, dict] | None = None) -> DecodingComparison:
    """Caption `images` once per decoding setting, e.g. {"greedy": {}, "beam 5": {"strategy": "beam"}}."""
    settings = settings or {"greedy": {"strategy": "greedy"},
                            "beam (5)": {"strategy": "beam", "num_beams": 5},
                            "sample (T=0.7, p=0.9)": {"strategy": "sample", "temperature": 0.7, "top_p": 0.9,
                                                      "seed": 0}}
    images = list(images)
    feats = captioner.encode_images(images)[:, None]      # encode once, decode many ways
    caps = {name: captioner.caption_features(feats, **kw) for name, kw in settings.items()}
    return DecodingComparison(images, settings, caps)
