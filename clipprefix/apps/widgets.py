"""An ipywidgets caption explorer: pick an item or upload an image / video, change decoding, see captions.

    from clipprefix.apps.widgets import caption_explorer
    caption_explorer("clipcap-coco", items="my_photos/")     # the one-line notebook cell

Every callback is a plain method (`select`, `on_upload`, `refresh`), so tests drive the explorer
without a browser. CLIP features are computed once per item (and per segment count for a video);
changing a decoding setting only re-runs the decoder. Import this module only where widgets are
wanted: `import clipprefix` does not load ipywidgets.
"""
from __future__ import annotations

import html
import tempfile
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as W   # this module is imported only where widgets are wanted (notebooks)

from ..base.errors import ClipPrefixError
from ..base.notebook import caption_html
from ..data import datasets, sampling, video
from .display import thumbnail_data_uri
from .inputs import kind_of
from .options import load_captioner
from .subtitles import srt_time
from .video_captions import frame_times, frames_per_segment, segment_spans


def _items(items) -> dict[str, tuple[Path, list[str]]]:
    """label -> (path, reference captions) from a folder, a dataset root, paths or `datasets.Item`s."""
    if items is None:
        return {}
    if isinstance(items, (str, Path)):
        items = datasets.load("auto", Path(items), "all")   # a folder's captions.csv/.jsonl give references
    out = {}
    for it in items:
        path = Path(getattr(it, "path", it))
        label = str(getattr(it, "id", path.name))
        out[label] = (path, list(getattr(it, "captions", [])))
    return out


class CaptionExplorer(W.VBox):
    """The explorer widget; `caption_explorer(...)` builds one. `captions` holds what it shows: one row
    per caption, (segment start in seconds or None for an image, text, score), best first."""

    def __init__(self, captioner, items=None, *, segments: int = 6, device: str = "auto"):
        self.captioner = load_captioner(captioner, device) if isinstance(captioner, (str, Path)) else captioner
        self.catalog = _items(items)
        g = self.captioner.generation
        style = {"description_width": "110px"}
        self.item = W.Dropdown(options=list(self.catalog), value=None, description="item", style=style)
        self.upload = W.FileUpload(accept="image/*,video/*", multiple=False, description="upload")
        self.strategy = W.ToggleButtons(options=["greedy", "beam", "sample"], value=g.strategy, description="strategy",
                                        style=style)
        self.num_beams = W.IntSlider(value=max(1, g.num_beams), min=1, max=10, description="beams", style=style)
        self.temperature = W.FloatSlider(value=g.temperature, min=0.1, max=2.0, step=0.05, description="temperature",
                                         style=style)
        self.top_p = W.FloatSlider(value=g.top_p, min=0.05, max=1.0, step=0.05, description="top-p", style=style)
        self.max_new_tokens = W.IntSlider(value=g.max_new_tokens, min=1, max=max(67, g.max_new_tokens),
                                          description="max tokens", style=style)
        self.num_return = W.IntSlider(value=1, min=1, max=5, description="alternatives", style=style)
        self.seed = W.IntText(value=0, description="seed", style=style)
        self.segments = W.IntSlider(value=segments, min=1, max=24, description="video segments", style=style)
        self.status = W.HTML()
        self.result = W.HTML()
        self.path: Path | None = None
        self.shown_name: str | None = None     # what the user calls the shown file (an upload's own name)
        self.references: list[str] = []
        self.captions: list[tuple[float | None, str, float]] = []
        self._feats: dict[tuple, Any] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="clipprefix-explorer-")
        self.item.observe(lambda ch: ch["new"] is not None and self.select(ch["new"]), names="value")
        self.strategy.observe(lambda ch: self._sync_controls(), names="value")   # before refresh: registered first
        self.upload.observe(self.on_upload, names="value")
        for w in (self.strategy, self.num_beams, self.temperature, self.top_p, self.max_new_tokens, self.num_return,
                  self.seed, self.segments):
            w.observe(lambda ch: self.refresh(), names="value")
        controls = W.VBox([W.HBox([self.item, self.upload]), self.strategy,
                           W.HBox([self.num_beams, self.num_return]), W.HBox([self.temperature, self.top_p]),
                           W.HBox([self.max_new_tokens, self.seed]), self.segments])
        super().__init__([controls, self.status, self.result])
        self._sync_controls()
        if self.catalog:
            self.item.value = next(iter(self.catalog))   # shows the first item at once

    # ------------------------------------------------------------------ callbacks
    def settings(self) -> dict:
        """Decoding overrides from the controls (only those that matter for the chosen strategy)."""
        s = {"strategy": self.strategy.value, "max_new_tokens": self.max_new_tokens.value,
             "num_return_sequences": self.num_return.value}
        if s["strategy"] == "beam":
            s["num_beams"] = self.num_beams.value
            s["num_return_sequences"] = min(s["num_return_sequences"], self.num_beams.value)
        elif s["strategy"] == "sample":
            s.update(temperature=self.temperature.value, top_p=self.top_p.value, seed=self.seed.value)
        else:
            s["num_return_sequences"] = 1
        return s

    def _sync_controls(self) -> None:
        """Controls that do not apply to the chosen strategy (see `settings`) or to an image are disabled."""
        st = self.strategy.value
        self.num_beams.disabled = st != "beam"
        self.num_return.disabled = st == "greedy"
        for w in (self.temperature, self.top_p, self.seed):
            w.disabled = st != "sample"
        self.segments.disabled = self.path is not None and not self._is_video()

    def select(self, label_or_path, *, shown_name: str | None = None) -> str:
        """Show a catalog item (by label) or any image / video path (`shown_name`: what to call it)."""
        if label_or_path in self.catalog:
            self.path, self.references = self.catalog[label_or_path]
        else:
            self.path, self.references = Path(label_or_path), []
        self.shown_name = shown_name or self.path.name
        self._sync_controls()
        return self.refresh()

    def on_upload(self, change) -> str:
        """FileUpload observer: `change["new"]` is a tuple of {"name", "content"} (ipywidgets 8)."""
        files = change["new"] if isinstance(change, dict) else change
        if not files:
            return self.result.value
        f = files[0]
        target = Path(tempfile.mkdtemp(dir=self._tmp.name)) / Path(f["name"]).name   # a new upload never reuses a path
        target.write_bytes(bytes(f["content"]))
        if self.item.value is not None:
            self.item.value = None        # the dropdown shows no item now, so picking any item again is a change
        return self.select(target, shown_name=str(f["name"]))

    def refresh(self) -> str:
        """Caption the current item with the current settings; returns (and shows) the result HTML."""
        if self.path is None:
            return ""
        try:
            body = self._video_html() if self._is_video() else self._image_html()
            self.status.value = ""
        except ClipPrefixError as e:
            body = ""
            self.captions = []
            msg = str(e).replace(str(self.path), self.shown_name)    # the user's file name, not a temporary path
            self.status.value = f'<span style="color:#b00">{html.escape(msg)}</span>'
        self.result.value = body
        return body

    # ------------------------------------------------------------------ rendering
    def _file_key(self) -> tuple:
        """The current file as a cache key: a file changed on disk is encoded again."""
        st = self.path.stat() if self.path.exists() else None
        return (str(self.path), st.st_mtime_ns if st else None, st.st_size if st else None)

    def _is_video(self) -> bool:
        return kind_of(self.path) == "video"

    def _image_html(self) -> str:
        key = self._file_key()
        if key not in self._feats:
            self._feats[key] = self.captioner.encode_images([self.path])[:, None]
        cap = self.captioner.caption_features(self._feats[key], **self.settings())[0]
        rows = [(cap.text, cap.score)] + [(a["text"], a["score"]) for a in cap.alternatives]
        self.captions = [(None, t, s) for t, s in rows]
        lines = "".join(f"<li>{caption_html(t)} <small>({s:.2f})</small></li>" for t, s in rows)
        return (f'<div><img src="{thumbnail_data_uri(self.path, 256)}"><p><b>{html.escape(self.shown_name)}</b></p>'
                f"<ol>{lines}</ol>{self._references_html()}</div>")

    def _references_html(self) -> str:
        refs = "".join(f"<li>{caption_html(r)}</li>" for r in self.references[:5])
        return f"<p><b>references</b></p><ul>{refs}</ul>" if refs else ""

    def _video_html(self) -> str:
        key = (*self._file_key(), self.segments.value)
        if key not in self._feats:
            spans = segment_spans(self.path, sampling.uniform(self.segments.value), strict=False)
            n = frames_per_segment(self.captioner)
            frames = list(video.frames_at(self.path, frame_times(spans, n), short_side=self.captioner.encoder.pre.size))
            feats = self.captioner.encode_images([f.image for f in frames]).view(len(spans), n, -1)
            self._feats[key] = (spans, feats, [frames[i * n + n // 2].image for i in range(len(spans))])
        spans, feats, mids = self._feats[key]
        caps = self.captioner.caption_features(feats, **self.settings())
        self.captions = [(a, t, s) for (a, _), c in zip(spans, caps)
                         for t, s in [(c.text, c.score)] + [(x["text"], x["score"]) for x in c.alternatives]]
        cells = []
        for (a, b), c, im in zip(spans, caps, mids):
            alts = "".join(f"<br><small>{caption_html(x['text'])} ({x['score']:.2f})</small>" for x in c.alternatives)
            cells.append(f'<figure style="display:inline-block;width:170px;margin:4px;vertical-align:top">'
                         f'<img src="{thumbnail_data_uri(im, 160)}"><figcaption><small>{srt_time(a - spans[0][0])}</small><br>'
                         f"{caption_html(c.text)} <small>({c.score:.2f})</small>{alts}</figcaption></figure>")
        return f"<div><p><b>{html.escape(self.shown_name)}</b></p>{''.join(cells)}{self._references_html()}</div>"


def caption_explorer(captioner: Any = "clipcap-coco", items: str | Path | Sequence[Any] | None = None, *,
                     segments: int = 6, device: str = "auto") -> CaptionExplorer:
    """An explorer widget over `items` (a folder of images/videos, a dataset root, or a list of
    paths / `datasets.Item`s), captioned by `captioner` (a Captioner, or a preset, folder or Hub id loaded
    on `device`: "auto" is the first GPU when there is one)."""
    return CaptionExplorer(captioner, items, segments=segments, device=device)
