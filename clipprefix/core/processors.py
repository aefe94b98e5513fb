"""What decoding does to the logits of one step: repetition controls, the n-gram ban, the minimum length,
sampling (temperature, top-k, top-p) and the stop rules (EOS, stop strings).

Semantics (pinned by tests): temperature is applied before top-k/top-p and only when sampling; EOS ends a
sequence and is not part of it; a stop string ends a sequence and is kept; `min_new_tokens` forbids EOS
before that many tokens.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..base.errors import ClipPrefixError
from .generation import GenerationConfig


def apply_controls(logits: torch.Tensor, history: torch.Tensor, cfg: GenerationConfig, step: int,
                    eos_token_id: int | None) -> torch.Tensor:
    """Repetition penalty, n-gram ban and min length on raw logits (B, V); history (B, t) tokens so far."""
    if cfg.repetition_penalty != 1.0 and history.shape[1]:
        prev = logits.gather(1, history)
        prev = torch.where(prev > 0, prev / cfg.repetition_penalty, prev * cfg.repetition_penalty)
        logits = logits.scatter(1, history, prev)
    n = cfg.no_repeat_ngram_size
    if n and history.shape[1] >= n - 1:
        hist = history.tolist()
        rows, cols = [], []
        for r, h in enumerate(hist):
            tail = tuple(h[len(h) - (n - 1):]) if n > 1 else ()
            for i in range(len(h) - n + 1):
                if tuple(h[i:i + n - 1]) == tail:
                    rows.append(r)
                    cols.append(h[i + n - 1])
        if rows:
            logits = logits.index_put((torch.tensor(rows), torch.tensor(cols)),
                                      torch.tensor(float("-inf"), dtype=logits.dtype))
    if step < cfg.min_new_tokens and eos_token_id is not None:
        logits = logits.clone()
        logits[:, eos_token_id] = float("-inf")
    return logits


def sample(logits: torch.Tensor, cfg: GenerationConfig, gen: torch.Generator | None) -> torch.Tensor:
    logits = logits / cfg.temperature
    if cfg.top_k:
        kth = logits.topk(min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= cfg.top_p   # keep the smallest set reaching top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(1)


class Stopper:
    """Decides which rows have just produced EOS or a stop string."""

    def __init__(self, cfg: GenerationConfig, eos_token_id: int | None, decode: Callable[[list[int]], str] | None):
        self.eos = eos_token_id if cfg.stop_at_eos else None
        self.strings = tuple(cfg.stop_strings) if cfg.stop_at_eos or cfg.stop_strings else ()
        if self.strings and decode is None:
            raise ClipPrefixError("Stop strings need a tokenizer to decode with.")
        self.decode = decode

    def is_eos(self, tok: int) -> bool:
        return self.eos is not None and tok == self.eos

    def hits_string(self, tokens: Sequence[int]) -> bool:
        if not self.strings:
            return False
        text = self.decode(list(tokens))
        return any(s in text for s in self.strings)
