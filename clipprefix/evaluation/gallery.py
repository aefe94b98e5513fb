"""Qualitative galleries: the best and worst captions of an evaluation, shown with their images or
frame strips, as matplotlib figures and one standalone HTML file (images embedded as base64).

    from clipprefix.evaluation.gallery import make_gallery
    g = make_gallery("runs/x/eval-test", by=("CIDEr", "CLIPScore"), n=6)   # reads predictions.jsonl
    g.html                  # runs/x/eval-test/gallery.html (opens anywhere, no other files needed)
    g.figures["CIDEr: worst"].savefig("worst.png")
    g                       # renders inline in Jupyter

    clipprefix evaluate ... --gallery

Pictures are read back from the source files recorded in the feature cache: an image is shown whole,
a video as a strip of the very frames its features were computed from (their cached timestamps). A
file that has moved away is drawn as a grey tile that says so.
"""
from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..base.errors import ClipPrefixError
from ..base.files import atomic_write_text
from ..base.notebook import InlineFigure, caption_html
from ..core.images import open_image
from ..data.video import frames_at, sample
from .evaluate import EvalResult, load_predictions

STRIP_FRAMES = 4


@dataclass
class Gallery:
    sections: dict[str, list[dict]]            # "CIDEr: best" -> items, best first
    figures: dict[str, object] = field(default_factory=dict)   # same keys -> matplotlib Figure (shows as a PNG)
    html: Path | None = None
    _body: str = ""

    def _repr_html_(self) -> str:
        return self._body


def select(items: Sequence[dict], by: str = "CIDEr", n: int = 6) -> tuple[list[dict], list[dict]]:
    """The `n` best and `n` worst items by per-item score `by` (ties: by id, so the choice is stable)."""
    scored = [it for it in items if by in it.get("scores", {})]
    if not scored:
        raise ClipPrefixError(f"No item has a '{by}' score; metrics present: "
                              f"{', '.join(sorted({k for it in items for k in it.get('scores', {})})) or 'none'}.")
    ranked = sorted(scored, key=lambda it: (-it["scores"][by], str(it["id"])))
    worst = sorted(scored, key=lambda it: (it["scores"][by], str(it["id"])))
    return ranked[:n], worst[:n]


def _placeholder(height: int, text: str) -> np.ndarray:
    im = Image.new("RGB", (int(height * 4 / 3), height), (200, 200, 200))
    ImageDraw.Draw(im).text((6, height // 2 - 6), text, fill=(60, 60, 60))
    return np.asarray(im)


def thumbnail(item: dict, height: int = 96, frames: int = STRIP_FRAMES) -> np.ndarray:
    """An HxWx3 uint8 picture of the item: the image, or a strip of `frames` of the video's sampled frames."""
    path = item.get("path")
    if not path or not Path(path).is_file():
        return _placeholder(height, "file not found")
    try:
        if item.get("kind") == "video":
            ts = item.get("timestamps") or []
            if ts:
                pick = np.linspace(0, len(ts) - 1, min(frames, len(ts))).round().astype(int)
                imgs = [f.image for f in frames_at(path, [ts[k] for k in pick], short_side=height)]
            else:
                imgs = [f.image for f in sample(path, f"uniform:{frames}", short_side=height)]
        else:
            imgs = [np.asarray(open_image(path))]     # as displayed: EXIF orientation, depth, alpha
    except (ClipPrefixError, OSError, ValueError) as e:
        return _placeholder(height, f"unreadable: {type(e).__name__}")
    tiles = []
    for a in imgs:
        im = Image.fromarray(a)
        w = max(1, round(im.width * height / im.height))
        tiles.append(np.asarray(im.resize((w, height), Image.BICUBIC)))
        tiles.append(np.full((height, 2, 3), 255, np.uint8))       # a white gap between frames
    return np.concatenate(tiles[:-1], axis=1)


def _jpeg_b64(a: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=88)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _score_line(item: dict, order: Sequence[str], per_line: int = 0) -> str:
    """'CIDEr 170.6  CLIPScore 30.2 ...' (x 100); `per_line` > 0 breaks the line after that many scores."""
    s = item.get("scores", {})
    parts = [f"{k} {s[k] * 100:.1f}" for k in order if k in s]
    n = per_line or len(parts) or 1
    return "\n".join("  ".join(parts[i:i + n]) for i in range(0, len(parts), n))


PANEL_W = 4.2       # inches per panel; a panel's picture keeps its aspect, its text takes TEXT_H below it
TEXT_H = 1.2        # inches: title line, prediction, reference and two lines of scores at 8 pt


def figure(items: Sequence[dict], title: str, pictures: dict, *, cols: int = 3, metrics: Sequence[str] = ()):
    """A matplotlib Figure (shows as a PNG in notebooks): one panel per item with its picture, prediction,
    first reference and scores; rows are as tall as the flattest picture needs (frame strips are wide)."""
    rows = max(1, -(-len(items) // cols))
    aspect = max((pictures[it["id"]].shape[0] / pictures[it["id"]].shape[1] for it in items), default=0.75)
    fig = InlineFigure(figsize=(PANEL_W * cols, (PANEL_W * aspect + TEXT_H) * rows + 0.4), layout="constrained")
    fig.suptitle(title)
    for k, it in enumerate(items):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(pictures[it["id"]])
        ax.set_xticks([])
        ax.set_yticks([])
        ref = it["references"][0] if it.get("references") else ""
        ax.set_title(f"{it['id']}", fontsize=8)
        ax.set_xlabel(f"pred: {it['prediction']}\nref: {ref}\n{_score_line(it, metrics, per_line=3)}", fontsize=8,
                      wrap=True)
    return fig


def html_page(sections: dict[str, list[dict]], pictures: dict, *, title: str = "clipprefix gallery",
              metrics: Sequence[str] = (), info: dict | None = None) -> str:
    """One self-contained HTML page (pictures inline as base64 JPEG)."""
    e = html.escape
    parts = [f"<h1>{e(title)}</h1>"]
    root = "clipprefix-gallery"   # every rule is scoped to it: shown in a notebook, it restyles nothing else
    if info:
        parts.append("<p>" + e(", ".join(f"{k}: {v}" for k, v in info.items())) + "</p>")
    for name, items in sections.items():
        parts.append(f"<h2>{e(name)}</h2><div class='grid'>")
        for it in items:
            refs = "".join(f"<li>{caption_html(r)}</li>" for r in it.get("references", [])[:5])
            parts.append(
                f"<figure><img alt='{e(str(it['id']))}' src='data:image/jpeg;base64,{_jpeg_b64(pictures[it['id']])}'>"
                f"<figcaption><b>{caption_html(it['prediction'])}</b><br><small>{e(str(it['id']))} &middot; "
                f"{e(_score_line(it, metrics))}</small><ul>{refs}</ul></figcaption></figure>")
        parts.append("</div>")
    style = (f"<style>.{root}{{font-family:sans-serif}}.{root} .grid{{display:flex;flex-wrap:wrap;gap:14px}}"
             f".{root} figure{{margin:0;width:330px;border:1px solid #ddd;padding:6px;overflow-wrap:anywhere}}"
             f".{root} img{{max-width:100%}}"
             f".{root} ul{{margin:4px 0 0 1em;padding:0;font-size:12px;color:#555}}</style>")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title></head>" \
           f"<body style='margin:1.5em'><div class='{root}'>{style}{''.join(parts)}</div></body></html>"


def make_gallery(source, out: str | os.PathLike | None = None, *, by: Sequence[str] | str = ("CIDEr", "CLIPScore"),
                 n: int = 6, figures: bool = True, height: int = 96, title: str | None = None) -> Gallery:
    """Best and worst `n` items by each metric in `by`, as figures and `out/gallery.html`.

    `source` is an evaluation folder (its predictions.jsonl), an `EvalResult` or a list of item records;
    `out` defaults to the evaluation folder (nothing is written when there is none).
    """
    info = None
    if isinstance(source, (str, os.PathLike)):
        items, folder = load_predictions(source), Path(source)
    elif isinstance(source, EvalResult):
        items, folder = source.items, source.out
        info = {k: source.info.get(k) for k in ("dataset", "split", "n_items")}
    else:
        items, folder = list(source), None
    by = [by] if isinstance(by, str) else list(by)
    present = {k for it in items for k in it.get("scores", {})}
    by = [m for m in by if m in present]
    if not by:
        raise ClipPrefixError(f"None of the requested metrics is in these predictions (present: {', '.join(sorted(present))}).")
    sections: dict[str, list[dict]] = {}
    for m in by:
        best, worst = select(items, m, n)
        sections[f"{m}: best"], sections[f"{m}: worst"] = best, worst
    pictures = {it["id"]: thumbnail(it, height) for its in sections.values() for it in its}
    metrics = [m for m in ("CIDEr", "BLEU-4", "METEOR", "CLIPScore", "RefCLIPScore") if m in present]
    title = title or f"clipprefix gallery{f' ({folder.name})' if folder else ''}"
    page = html_page(sections, pictures, title=title, metrics=metrics, info=info)
    body = page.index("<body")
    gal = Gallery(sections, {}, None, page[page.index(">", body) + 1: page.index("</body>")])
    if figures:
        gal.figures = {name: figure(its, name, pictures, metrics=metrics) for name, its in sections.items()}
    target = Path(out) if out is not None else folder
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        gal.html = atomic_write_text(target / "gallery.html", page)
    return gal
