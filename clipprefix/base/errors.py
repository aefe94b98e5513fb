"""The one exception type for expected, user-facing failures, and how a notebook shows it.

A `ClipPrefixError` carries one sentence that says what went wrong and how to fix it. The CLI prints
it without a traceback and exits with status 2; library users can catch it like any exception. In
IPython / Jupyter, `import clipprefix` installs `show_in_notebooks`: the cell fails as before (Run All
stops there, nbclient sees the error), but shows the sentence and the cell's line instead of a
chained traceback of 50-150 lines; every other exception keeps its traceback. `last_traceback()`
prints the whole chain; CLIPPREFIX_TRACEBACKS=1 keeps full tracebacks.
"""
from __future__ import annotations

import os
import sys
import traceback

_LAST: list = []      # the last shortened error: (type, value, traceback)


class ClipPrefixError(Exception):
    """An expected failure (bad input, missing weights, impossible option) with a one-sentence message."""


def _one_sentence(shell, etype, value, tb, tb_offset=None):
    """IPython's custom-exception handler: show `Type: sentence (in this cell, line N: code)`."""
    _LAST[:] = [(etype, value, tb)]
    cell = None
    for frame in traceback.extract_tb(tb) if tb is not None else []:
        if frame.filename.startswith("<ipython-input") or "ipykernel_" in frame.filename:
            cell = frame       # the cell's own line that called into the library
            break
    where = f"  (in this cell, line {cell.lineno}: {cell.line.strip()})" if cell is not None and cell.line else ""
    stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}{where}"]
    # IPython's run_code only calls this handler and shows nothing itself; _showtraceback is what
    # ipykernel overrides to send the cell's `error` output (a private hook, stable since IPython 1)
    show = getattr(shell, "_showtraceback", None)
    if show is not None:
        show(etype, value, stb)
    else:
        print(stb[0], file=sys.stderr)
    return stb


def last_traceback() -> None:
    """Print the full traceback of the last ClipPrefixError a notebook showed as one sentence."""
    if _LAST:
        traceback.print_exception(*_LAST[0])


def show_in_notebooks() -> bool:
    """In a running IPython shell, show ClipPrefixError as its one sentence; returns whether it did.
    IPython is looked up among the loaded modules only: outside a notebook nothing is imported."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None or os.environ.get("CLIPPREFIX_TRACEBACKS", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    shell.set_custom_exc((ClipPrefixError,), _one_sentence)
    return True
