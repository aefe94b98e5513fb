"""Batched decoding from a prefix with a KV cache: greedy, beam search and real sampling.

    seqs = generate(lm, prefix, GenerationConfig(strategy="beam", num_beams=5), eos_token_id=eos)

The prefix goes through the LM once (prefill, logits only at the last position); every later step
feeds one token per row and reuses the cached keys/values. Rows that finish leave the batch, so a
batch costs what its longest caption costs and nothing more. The LM input is built by
`lm_input.build_lm_input`, the same function the training loss uses.

Beam search ranks and ends like transformers' (hypotheses scored sum log p / length ** length_penalty; an
item ends once `num_beams` hypotheses are finished), not like ClipCap's `generate_beam` (which keeps
finished beams competing on a running average), so beam captions of converted ClipCap weights can differ
from that repository's; greedy decoding is token-for-token the same.

Semantics (pinned by tests): temperature is applied before top-k/top-p and only when sampling (greedy
and beam ignore it); EOS ends a sequence and is not part of it; a stop string ends a sequence and is
kept (ClipCap stops at "."); `min_new_tokens` forbids EOS before that many tokens.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..base.errors import ClipPrefixError
from .lm_input import build_lm_input

STRATEGIES = ("greedy", "beam", "sample")


@dataclass
class GenerationConfig:
    strategy: str = "greedy"
    max_new_tokens: int = 30
    min_new_tokens: int = 0
    num_beams: int = 5
    length_penalty: float = 1.0        # beam score = sum log p / length ** length_penalty
    num_return_sequences: int = 1
    temperature: float = 1.0
    top_k: int = 0                     # 0: off
    top_p: float = 1.0                 # 1.0: off
    seed: int | None = None
    repetition_penalty: float = 1.0    # 1.0: off (CTRL-style, as in transformers)
    no_repeat_ngram_size: int = 0      # 0: off
    stop_strings: tuple[str, ...] = field(default_factory=tuple)
    stop_at_eos: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop_strings"] = list(self.stop_strings)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GenerationConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "stop_strings" in d:
            d["stop_strings"] = tuple(d["stop_strings"] or ())
        return cls(**d)

    def updated(self, **overrides) -> "GenerationConfig":
        """A copy with the non-None overrides applied (handy for CLI flags)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if "stop_strings" in overrides:
            overrides["stop_strings"] = tuple(overrides["stop_strings"])
        return replace(self, **overrides)

    def validate(self) -> "GenerationConfig":
        def bad(msg):
            raise ClipPrefixError(msg)
        if self.strategy not in STRATEGIES:
            bad(f"Unknown decoding strategy '{self.strategy}'; choose one of {', '.join(STRATEGIES)}.")
        if self.max_new_tokens < 1:
            bad(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            bad(f"min_new_tokens must be between 0 and max_new_tokens ({self.max_new_tokens}), got {self.min_new_tokens}.")
        if self.temperature <= 0:
            bad(f"temperature must be positive, got {self.temperature}.")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            bad(f"top_k must be >= 0 and top_p in (0, 1], got top_k={self.top_k}, top_p={self.top_p}.")
        if self.repetition_penalty <= 0 or self.no_repeat_ngram_size < 0:
            bad("repetition_penalty must be positive and no_repeat_ngram_size non-negative.")
        if self.strategy == "beam" and self.num_beams < 1:
            bad(f"num_beams must be at least 1, got {self.num_beams}.")
        limit = self.num_beams if self.strategy == "beam" else (1 if self.strategy == "greedy" else 10**6)
        if not 1 <= self.num_return_sequences <= limit:
            bad(f"num_return_sequences must be between 1 and {limit} for {self.strategy} decoding, "
                f"got {self.num_return_sequences}.")
        return self


@dataclass
class Sequence_:
    tokens: list[int]
    logprobs: list[float]          # log p of each token under the model (after repetition controls)
    score: float                   # beam: length-normalised sum; otherwise mean log p

    @property
    def logprob(self) -> float:
        return float(sum(self.logprobs))


# ---------------------------------------------------------------------- logits processing
def _apply_controls(logits: torch.Tensor, history: torch.Tensor, cfg: GenerationConfig, step: int,
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


def _sample(logits: torch.Tensor, cfg: GenerationConfig, gen: torch.Generator | None) -> torch.Tensor:
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


class _Stopper:
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


# ---------------------------------------------------------------------- KV cache with room to grow
@functools.lru_cache(maxsize=None)
def _growing_layer_class():
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """One layer's keys/values in a buffer with room for the tokens still to come.

        transformers' DynamicLayer concatenates at every step, copying the whole cache each time (a fifth
        of decoding time at batch 32 on a CPU); here a step writes one slot in place and hands attention a view.
        """

        def __init__(self, layer, room: int):
            super().__init__()
            self.is_initialized = True
            self.dtype, self.device = layer.keys.dtype, layer.keys.device
            b, h, n, d = layer.keys.shape
            self._k = layer.keys.new_empty(b, h, n + room, d)
            self._v = layer.values.new_empty(b, h, n + room, d)
            self._k[:, :, :n], self._v[:, :, :n] = layer.keys, layer.values
            self.n = n
            self._views()

        def _views(self):
            self.keys, self.values = self._k[:, :, :self.n], self._v[:, :, :self.n]

        def update(self, key_states, value_states, *args, **kwargs):
            t = key_states.shape[-2]
            if self.n + t > self._k.shape[-2]:   # out of room: grow (never happens within max_new_tokens)
                self._k = torch.cat([self._k, torch.empty_like(self._k)], dim=-2)
                self._v = torch.cat([self._v, torch.empty_like(self._v)], dim=-2)
            self._k[:, :, self.n:self.n + t] = key_states
            self._v[:, :, self.n:self.n + t] = value_states
            self.n += t
            self._views()
            return self.keys, self.values

        def select(self, idx: torch.Tensor):
            self._k, self._v = self._k.index_select(0, idx), self._v.index_select(0, idx)
            self._views()

        def get_seq_length(self) -> int:
            return self.n

        def get_mask_sizes(self, query_length: int):
            return self.n + query_length, 0

        def get_max_length(self) -> int:
            return -1

    return GrowingLayer


def _growable(past, room: int):
    """Swap the layers of a prefilled transformers cache for growing layers with `room` free slots."""
    if hasattr(past, "layers") and all(getattr(l, "keys", None) is not None for l in past.layers):
        cls = _growing_layer_class()
        past.layers = [cls(l, room) for l in past.layers]
    return past


def _select(past, idx: torch.Tensor) -> None:
    """Keep (or repeat/reorder) batch rows `idx` of the cache."""
    layers = getattr(past, "layers", None)
    if layers and hasattr(layers[0], "select"):
        for layer in layers:
            layer.select(idx)
    else:
        past.reorder_cache(idx)


# ---------------------------------------------------------------------- prefill
@functools.lru_cache(maxsize=None)
def _cache_kwarg(lm_class: type) -> str:
    """The keyword a model takes its KV cache by: `cache` in current transformers, `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(lm_class.forward).parameters else "past_key_values"


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


class _KVCache:
    """The cache of the written-out GPT-2 path: just the growing layers."""

    def __init__(self, layers):
        self.layers = layers


def _start(lm, prefix: torch.Tensor, prompt_ids: torch.Tensor | None, room: int):
    """Run the prefix (and prompt) through the LM once: the last position's logits (B, V) float32, a KV
    cache with `room` free slots, and `step(tokens (B,), cache) -> (logits, cache)` for the tokens after.
    GPT-2 takes its written-out forward (`gpt2_step.py`) for both; other LMs their own forward."""
    from types import SimpleNamespace

    from ..fast.gpt2_step import gpt2_steps

    x = build_lm_input(lm.get_input_embeddings(), prefix, prompt_ids)
    fast = gpt2_steps(lm)
    if fast is not None:
        logits, kv = fast.prefill(x.inputs_embeds)
        cls = _growing_layer_class()
        return logits, _KVCache([cls(SimpleNamespace(keys=k, values=v), room) for k, v in kv]), \
            lambda tokens, past: (fast(tokens, past), past)
    out = lm(inputs_embeds=x.inputs_embeds, attention_mask=x.attention_mask, use_cache=True, logits_to_keep=1)
    kw = _cache_kwarg(type(lm))

    def step(tokens: torch.Tensor, past):
        out = lm(inputs_embeds=lm.get_input_embeddings()(tokens[:, None]), use_cache=True, **{kw: past})
        return out.logits[:, -1].float(), _cache_of(out)

    return out.logits[:, -1].float(), _growable(_cache_of(out), room), step


# ---------------------------------------------------------------------- public API
@torch.inference_mode()
def generate(lm, prefix: torch.Tensor, cfg: GenerationConfig | None = None, *, eos_token_id: int | None,
             decode: Callable[[list[int]], str] | None = None,
             prompt_ids: torch.Tensor | None = None) -> list[list[Sequence_]]:
    """Decode every row of `prefix` (B, K, n_embd); returns, per row, `num_return_sequences` sequences.

    `prompt_ids` (B, P), optional, are tokens that follow the prefix and condition the caption.
    `decode` (token ids -> text) is needed only for stop strings.
    """
    cfg = (cfg or GenerationConfig()).validate()
    stopper = _Stopper(cfg, eos_token_id, decode)
    if cfg.strategy == "beam":
        return _beam(lm, prefix, cfg, stopper, eos_token_id, prompt_ids)
    if cfg.strategy == "sample" and cfg.num_return_sequences > 1:
        r = cfg.num_return_sequences
        prefix = prefix.repeat_interleave(r, dim=0)
        prompt_ids = prompt_ids.repeat_interleave(r, dim=0) if prompt_ids is not None else None
        flat = _greedy_or_sample(lm, prefix, cfg, stopper, eos_token_id, prompt_ids)
        return [[s[0] for s in flat[i:i + r]] for i in range(0, len(flat), r)]
    return _greedy_or_sample(lm, prefix, cfg, stopper, eos_token_id, prompt_ids)


def _greedy_or_sample(lm, prefix, cfg, stopper, eos_token_id, prompt_ids) -> list[list[Sequence_]]:
    b = prefix.shape[0]
    device = prefix.device
    gen = None
    if cfg.strategy == "sample" and cfg.seed is not None:
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
    logits, past, _step = _start(lm, prefix, prompt_ids, cfg.max_new_tokens)
    alive = torch.arange(b, device=device)                       # original row of each batch row
    history = torch.zeros(b, 0, dtype=torch.long, device=device)  # tokens of the alive rows
    toks: list[list[int]] = [[] for _ in range(b)]
    lps: list[list[float]] = [[] for _ in range(b)]
    for step in range(cfg.max_new_tokens):
        logits = _apply_controls(logits, history, cfg, step, eos_token_id)
        nxt = logits.argmax(-1) if cfg.strategy == "greedy" else _sample(logits, cfg, gen)
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
            _select(past, idx)
        logits, past = _step(nxt, past)
    return [[Sequence_(t, l, sum(l) / max(len(l), 1))] for t, l in zip(toks, lps)]


def _beam(lm, prefix, cfg, stopper, eos_token_id, prompt_ids) -> list[list[Sequence_]]:
    b, w = prefix.shape[0], cfg.num_beams
    device = prefix.device
    logits, past, _step = _start(lm, prefix, prompt_ids, cfg.max_new_tokens)
    _select(past, torch.arange(b, device=device).repeat_interleave(w))
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
        logp = _apply_controls(logits, history, cfg, step, eos_token_id).log_softmax(-1)
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
        _select(past, idx)
        logits, past = _step(nxt, past)
    return [sorted(f, key=lambda s: s.score, reverse=True)[: cfg.num_return_sequences] for f in finished]
