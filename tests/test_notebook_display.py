"""What a notebook shows of the library's results: figures as pictures, captions isolated and wrapping.

IPython's own display formatter (what Jupyter calls on a cell's value) decides the MIME types; a fresh
one has no matplotlib-inline hook, as in a kernel where pyplot never loaded the inline backend.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure

from clipprefix.base.notebook import InlineFigure, caption_html
from clipprefix.training.config import TrainResult

PNG = b"\x89PNG\r\n\x1a\n"


def shown(obj) -> dict:
    data, _ = DisplayFormatter().format(obj)
    return data


def test_a_bare_figure_shows_as_text_and_an_inline_figure_as_a_picture():
    bare = Figure()
    bare.add_subplot().plot([0, 1])
    assert "image/png" not in shown(bare) and shown(bare)["text/plain"].startswith("<Figure size")  # the defect
    fig = InlineFigure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1])
    png = shown(fig)["image/png"]
    assert png.startswith(PNG) and len(png) > 1000


def test_loss_curves_render_as_a_png():
    history = [{"epoch": e, "train_loss": 3.0 / e, "val_loss": 3.5 / e, "samples": [], "samples_per_s": 10.0}
               for e in (1, 2, 3)]
    res = TrainResult(Path("run"), Path("run/best"), Path("run/last"), history, 30, 1.0, True)
    fig = res.plot()
    assert shown(fig)["image/png"].startswith(PNG)
    assert [len(line.get_xdata()) for line in fig.axes[0].get_lines()] == [3, 3]   # train and validation


@pytest.mark.parametrize("text", ["שלום עולם", "a red circle ש", "<b>bold</b> & co"])
def test_caption_html_isolates_direction_escapes_and_wraps(text):
    out = caption_html(text)
    assert out.startswith("<bdi") and out.endswith("</bdi>") and "overflow-wrap:anywhere" in out
    assert "<b>" not in out and "&lt;b&gt;" in out or "<b>" not in text


def test_every_caption_renderer_isolates_and_wraps_caption_text():
    """Captioned images, decoding comparisons and training tables show captions through caption_html."""
    import numpy as np
    from types import SimpleNamespace

    from clipprefix.apps.display import CaptionedImages, DecodingComparison

    text = "שלום " + "x" * 300                       # right-to-left, then one unbreakable 300-letter run
    img = np.zeros((8, 8, 3), np.uint8)
    cap = SimpleNamespace(text=text, score=-1.0)
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": None, "samples_per_s": 1.0,
                "samples": [{"id": "a", "prediction": text}]}]
    shown = {"CaptionedImages": CaptionedImages([img], [cap])._repr_html_(),
             "DecodingComparison": DecodingComparison([img], {"greedy": {}}, {"greedy": [cap]})._repr_html_(),
             "TrainResult": TrainResult(Path("r"), Path("r/b"), Path("r/l"), history, 1, 1.0, True)._repr_html_()}
    for name, page in shown.items():
        assert caption_html(text) in page, name
