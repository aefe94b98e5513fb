"""How many CPU threads torch uses, for a block of code.

Small models (the tiny preset) gain nothing from a second thread, and when another process keeps a
core busy every op's OpenMP barrier waits for a descheduled thread: training the tiny captioner took
167 s with 2 threads against 7 s with 1 on a shared 2-core machine.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch threads (None: leave torch's setting alone), then restore it."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
