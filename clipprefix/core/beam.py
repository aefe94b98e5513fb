"""Beam search over a batch, every item's beams in one batch of rows, the KV cache reordered in place.

Beam search ranks and ends like transformers' (hypotheses scored sum log p / length ** length_penalty; an
item ends once `num_beams` hypotheses are finished), not like ClipCap's `generate_beam` (which keeps
finished beams competing on a running average), so beam captions of converted ClipCap weights can differ
from that repository's; greedy decoding is token-for-token the same.
"""
from __future__ import annotations

import torch

from .generation import Sequence_
from .kv_cache import select, start
from .processors import apply_controls


def beam_search(lm, prefix, cfg, stopper, eos_token_id, fast=None) -> list[list[Sequence_]]:
    """Per item, the `num_return_sequences` best finished hypotheses (see the module docstring)."""
    b, w = prefix.shape[0], cfg.num_beams
    device = prefix.device
    logits, past, step_fn = start(lm, prefix, cfg.max_new_tokens, fast=fast)
    select(past, torch.arange(b, device=device).repeat_interleave(w))
    logits = logits.repeat_interleave(w, dim=0)
    scores = torch.full((b, w), float("-inf"), device=device)
    scores[:, 0] = 0.0                                             # all beams start identical: expand one
    items = list(range(b))                                         # original item of each alive block of w rows
    history = torch.zeros(b * w, 0, dtype=torch.long, device=device)
    beam_lps: list[list[float]] = [[] for _ in range(b * w)]
    finished: list[list[Sequence_]] = [[] for _ in range(b)]

    def norm(total: float, length: int) -> float:
        return total / (max(length, 1) ** cfg.length_penalty)

    for step in range(cfg.max_new_tokens):
        logp = apply_controls(logits, history, cfg, step, eos_token_id).log_softmax(-1)
        v = logp.shape[-1]
        cand = (scores.view(-1, 1) + logp).view(len(items), w * v)
        top_scores, top_idx = cand.topk(2 * w, dim=1)
        src, tok = (top_idx // v).tolist(), (top_idx % v).tolist()
        top_scores_l = top_scores.tolist()
        last = step == cfg.max_new_tokens - 1
        rows, new_tok, new_scores, new_lps, keep_items = [], [], [], [], []
        for i, item in enumerate(items):
            chosen = []
            for s, j, t in zip(top_scores_l[i], src[i], tok[i]):
                if s == float("-inf"):
                    break
                r = i * w + j
                seq = history[r].tolist()
                lp_list = beam_lps[r] + [s - float(scores.view(-1)[r])]
                if stopper.is_eos(t):
                    finished[item].append(Sequence_(seq, lp_list[:-1], norm(s, len(seq) + 1)))
                elif stopper.hits_string(seq + [t]) or last:
                    finished[item].append(Sequence_(seq + [t], lp_list, norm(s, len(seq) + 1)))
                else:
                    chosen.append((r, t, s, lp_list))
                if len(chosen) == w:
                    break
            if len(finished[item]) >= w or last or not chosen:
                continue                                           # item done: its rows leave the batch
            while len(chosen) < w:                                 # pad with dead beams
                chosen.append((chosen[0][0], chosen[0][1], float("-inf"), chosen[0][3]))
            keep_items.append(item)
            for r, t, s, lp_list in chosen:
                rows.append(r)
                new_tok.append(t)
                new_scores.append(s)
                new_lps.append(lp_list)
        if not keep_items:
            break
        idx = torch.tensor(rows, device=device)
        nxt = torch.tensor(new_tok, device=device)
        history = torch.cat([history[idx], nxt[:, None]], dim=1)
        beam_lps = new_lps
        scores = torch.tensor(new_scores, device=device).view(len(keep_items), w)
        items = keep_items
        select(past, idx)
        logits, past = step_fn(nxt, past)
    return [sorted(f, key=lambda s: s.score, reverse=True)[: cfg.num_return_sequences] for f in finished]
