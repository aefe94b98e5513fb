"""Batched decoding from a prefix with a KV cache: greedy, beam search (`beam.py`) and real sampling.

    seqs = generate(lm, prefix, GenerationConfig(strategy="beam", num_beams=5), eos_token_id=eos)

The prefix goes through the LM once (prefill, logits only at the last position); every later step
feeds one token per row and reuses the cached keys/values. Rows that finish leave the batch, so a
batch costs what its longest caption costs and nothing more. The LM input is built by
`lm_input.build_lm_input`, the same function the training loss uses. With the fast paths on
(`clipprefix.fast`), GPT-2 takes its written-out prefill and step; otherwise every LM takes its own forward.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .beam import beam_search
from .generation import GenerationConfig, Sequence_
from .kv_cache import select, start
from .processors import Stopper, apply_controls, sample


@torch.inference_mode()
def generate(lm, prefix: torch.Tensor, cfg: GenerationConfig | None = None, *, eos_token_id: int | None,
             decode: Callable[[list[int]], str] | None = None, fast: bool | None = None) -> list[list[Sequence_]]:
    """Decode every row of `prefix` (B, K, n_embd); returns, per row, `num_return_sequences` sequences.

    `decode` (token ids -> text) is needed only for stop strings; `fast` overrides the fast switch.
    """
    cfg = (cfg or GenerationConfig()).validate()
    stopper = Stopper(cfg, eos_token_id, decode)
    if cfg.strategy == "beam":
        return beam_search(lm, prefix, cfg, stopper, eos_token_id, fast)
    if cfg.strategy == "sample" and cfg.num_return_sequences > 1:
        r = cfg.num_return_sequences
        flat = _greedy_or_sample(lm, prefix.repeat_interleave(r, dim=0), cfg, stopper, eos_token_id, fast)
        return [[s[0] for s in flat[i:i + r]] for i in range(0, len(flat), r)]
    return _greedy_or_sample(lm, prefix, cfg, stopper, eos_token_id, fast)


def _greedy_or_sample(lm, prefix, cfg, stopper, eos_token_id, fast) -> list[list[Sequence_]]:
    b = prefix.shape[0]
    device = prefix.device
    gen = None
    if cfg.strategy == "sample" and cfg.seed is not None:
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
    logits, past, step_fn = start(lm, prefix, cfg.max_new_tokens, fast=fast)
    alive = torch.arange(b, device=device)                       # original row of each batch row
    history = torch.zeros(b, 0, dtype=torch.long, device=device)  # tokens of the alive rows
    toks: list[list[int]] = [[] for _ in range(b)]
    lps: list[list[float]] = [[] for _ in range(b)]
    for step in range(cfg.max_new_tokens):
        logits = apply_controls(logits, history, cfg, step, eos_token_id)
        nxt = logits.argmax(-1) if cfg.strategy == "greedy" else sample(logits, cfg, gen)
        tok_lp = -F.cross_entropy(logits, nxt, reduction="none")    # log p(next): one fused pass, not logsumexp's three
        keep = []
        for j, (row, t, lp) in enumerate(zip(alive.tolist(), nxt.tolist(), tok_lp.tolist())):
            if stopper.is_eos(t):
                continue
            toks[row].append(t)
            lps[row].append(lp)
            if not stopper.hits_string(toks[row]):
                keep.append(j)
        if not keep or step == cfg.max_new_tokens - 1:
            break
        history = torch.cat([history, nxt[:, None]], dim=1)
        if len(keep) < len(alive):
            idx = torch.tensor(keep, device=device)
            alive, history, nxt = alive[idx], history[idx], nxt[idx]
            select(past, idx)
        logits, past = step_fn(nxt, past)
    return [[Sequence_(t, l, sum(l) / max(len(l), 1))] for t, l in zip(toks, lps)]
