"""What every layer hands a notebook to show: figures that render themselves, and caption text in HTML.

    fig = InlineFigure(figsize=(6, 3.5))      # a matplotlib Figure; as a cell's value it shows as a PNG
    f"<li>{caption_html(text)} <small>(score)</small></li>"

A bare `matplotlib.figure.Figure` has no `_repr_png_`: IPython draws it only through the formatter that
matplotlib-inline registers when pyplot first loads the inline backend (on `plt.figure()`,
`plt.subplots()`, `plt.show()` or `%matplotlib inline`, not on `import matplotlib.pyplot`), so a
library's figure shown as a cell's value reads `<Figure size 600x350 with 1 Axes>`. `InlineFigure`
carries its own PNG, whatever the backend (MPLBACKEND=Agg included) and with no pyplot state.

Caption text comes from a model: it can hold right-to-left characters (which would pull a following
score into their run and mirror it) and long unbroken runs (which would overflow their box).
`caption_html` isolates its direction (`<bdi>`) and lets it wrap anywhere.
"""
from __future__ import annotations

import html
import io

from matplotlib.figure import Figure

PNG_DPI = 100       # pixels per inch of the PNG a notebook shows (a 6 in wide figure is 600 px)


class InlineFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in Jupyter (and wherever `_repr_png_` is read)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=PNG_DPI, bbox_inches="tight")
        return buf.getvalue()


def caption_html(text: str) -> str:
    """`text` escaped for HTML, in its own direction (a right-to-left caption keeps what follows it on
    its right) and free to wrap anywhere (a long token run stays inside its box)."""
    return f'<bdi style="overflow-wrap:anywhere">{html.escape(str(text))}</bdi>'
