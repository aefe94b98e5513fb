"""The optional performance layer, behind one switch.

    CLIPPREFIX_FAST=0 clipprefix caption ...          # stock transformers / torch everywhere
    Captioner.from_pretrained(name, fast=False)       # the same, per object (also ClipEncoder.load, generate)
    with fast.disabled(): ...                         # the same, for a block (tests, benchmarks)

With the switch on (the default) and on a CPU: GPT-2's prefill and one-token step are written out
(`gpt2_step.py`), CLIP's and GPT-2's linear layers run through oneDNN with weights packed once and the
MLP activation fused in (`cpu_linear.py`), and GPT-2's five-pass GELU is one fused pass
(`activations.py`). Off, or on another device, the stock modules run. Both give the same tokens; logits
agree to float rounding (tests pin both). What each piece gains is measured in `benchmarks/`.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from ..base.paths import env_flag

_local = threading.local()


def enabled(override: bool | None = None) -> bool:
    """Whether the fast paths are on: `override` when given, else a `disabled()`/`enabled_for()` block,
    else the CLIPPREFIX_FAST environment variable (default on)."""
    if override is not None:
        return bool(override)
    forced = getattr(_local, "forced", None)
    if forced is not None:
        return forced
    return env_flag("CLIPPREFIX_FAST", default=True)


@contextlib.contextmanager
def enabled_for(on: bool) -> Iterator[None]:
    """Turn the fast paths on or off for the block (this thread)."""
    before = getattr(_local, "forced", None)
    _local.forced = bool(on)
    try:
        yield
    finally:
        _local.forced = before


def disabled():
    """Stock transformers / torch for the block (this thread)."""
    return enabled_for(False)
