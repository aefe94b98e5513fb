"""The KV cache decoding keeps (transformers' cache with room to grow in place, row selection), and
`start`, the prefill that fills it.

transformers' DynamicLayer concatenates at every step, copying the whole cache each time (a fifth of
decoding time at batch 32 on a CPU); a growing layer writes one slot in place and hands attention a view.
"""
from __future__ import annotations

import functools
import inspect
from types import SimpleNamespace
from typing import Callable, NamedTuple

import torch

from transformers.cache_utils import DynamicLayer

from ..fast import enabled as fast_enabled
from ..fast.gpt2_step import gpt2_steps
from .lm_input import build_lm_input


class GrowingLayer(DynamicLayer):
    """One layer's keys/values in a buffer with room for the tokens still to come."""

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


def growable(past, room: int):
    """Swap the layers of a prefilled transformers cache for growing layers with `room` free slots."""
    if hasattr(past, "layers") and all(getattr(l, "keys", None) is not None for l in past.layers):
        past.layers = [GrowingLayer(l, room) for l in past.layers]
    return past


def select(past, idx: torch.Tensor) -> None:
    """Keep (or repeat/reorder) batch rows `idx` of the cache."""
    layers = getattr(past, "layers", None)
    if layers and hasattr(layers[0], "select"):
        for layer in layers:
            layer.select(idx)
    else:
        past.reorder_cache(idx)


@functools.lru_cache(maxsize=None)
def cache_kwarg(lm_class: type) -> str:
    """The keyword a model takes its KV cache by: `cache` in current transformers, `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(lm_class.forward).parameters else "past_key_values"


def cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


class KVCache:
    """The cache of the written-out GPT-2 path: just the growing layers."""

    def __init__(self, layers):
        self.layers = layers


class Prefilled(NamedTuple):
    logits: torch.Tensor            # (B, V) float32: the last position's
    cache: object                   # the KV cache, with room for the tokens to come
    step: Callable                  # step(tokens (B,), cache) -> (logits (B, V) float32, cache)


def start(lm, prefix: torch.Tensor, room: int, *, fast: bool | None = None) -> Prefilled:
    """Run the prefix through the LM once: the last position's logits (B, V) float32, a KV cache with
    `room` free slots, and `step(tokens (B,), cache) -> (logits, cache)` for the tokens after. With the
    fast paths on, GPT-2 takes its written-out forward (`fast/gpt2_step.py`) for both; other LMs, and every
    LM with them off, their own forward."""
    x = build_lm_input(lm.get_input_embeddings(), prefix)
    steps = gpt2_steps(lm) if fast_enabled(fast) else None
    if steps is not None:
        logits, kv = steps.prefill(x.inputs_embeds)
        cache = KVCache([GrowingLayer(SimpleNamespace(keys=k, values=v), room) for k, v in kv])
        return Prefilled(logits, cache, lambda tokens, past: (steps(tokens, past), past))
    out = lm(inputs_embeds=x.inputs_embeds, attention_mask=x.attention_mask, use_cache=True, logits_to_keep=1)
    kw = cache_kwarg(type(lm))

    def step(tokens: torch.Tensor, past):
        out = lm(inputs_embeds=lm.get_input_embeddings()(tokens[:, None]), use_cache=True, **{kw: past})
        return out.logits[:, -1].float(), cache_of(out)

    return Prefilled(out.logits[:, -1].float(), growable(cache_of(out), room), step)
