"""GPT-2's forward pass for one new token per row, written out for the decoder's inner loop.

    steps = gpt2_steps(lm)                  # None for models this does not cover (they take transformers' path)
    logits, kv = steps.prefill(embeds)      # the prefix (and prompt): last logits, each layer's keys/values
    logits = steps(tokens, cache)           # tokens (B,), cache: the growing KV cache decoding.py keeps

The same weights and the same arithmetic as transformers' GPT2LMHeadModel (pinned by tests: the tokens
equal the no-cache reference, the logits transformers' own), minus what one token per row never needs
(masks, position ids, output objects), and on a CPU with the matrix products that CPU runs fastest.
On a CPU the block weights and the LM head get packed copies in oneDNN's layout (`cpu_linear.pack`:
made on first use, rebuilt when a weight changes, kept as long as the model: 4 bytes x 124M for GPT-2
small in fp32, half in bf16) and GPT-2's tanh GELU is fused into the c_fc product; on a GPU nothing is
copied. What each of these gains on a given CPU is measured by `benchmarks/bench_caption.py`.
"""
from __future__ import annotations

import weakref
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from .cpu_linear import cpu_linear, pack, signature

_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, GPT2Steps]" = weakref.WeakKeyDictionary()


def gpt2_steps(lm) -> "GPT2Steps | None":
    """The step function for `lm`, or None when `lm` is not a plain GPT-2 (another architecture, cross-
    attention, upcast-and-reordered attention): decoding then calls the model itself."""
    cfg = getattr(lm, "config", None)
    if type(lm).__name__ != "GPT2LMHeadModel" or cfg is None or getattr(cfg, "add_cross_attention", False) \
            or getattr(cfg, "reorder_and_upcast_attn", False):
        return None
    steps = _CACHE.get(lm)
    if steps is None or steps.stale(lm):
        steps = _CACHE[lm] = GPT2Steps(lm)
    return steps


# transformers' activation modules that are exactly F.gelu (up to rounding) -> the GELU oneDNN fuses into c_fc
_GELU = {"NewGELUActivation": "tanh", "GELUTanh": "tanh", "PytorchGELUTanh": "tanh", "GELUActivation": "none"}


def _gelu_kind(act) -> str | None:
    """'tanh' / 'none' when `act` is a GELU oneDNN can fuse (nn.GELU, as `activations.fuse_gelu` leaves GPT-2's,
    or transformers' own), else None (the module is called as it is)."""
    if type(act) is torch.nn.GELU:
        return act.approximate
    return _GELU.get(type(act).__name__)


def _scaling(attn, layer_idx: int) -> float:
    """The factor on q.k: transformers' own `scaling` where it has one, else computed as GPT-2 does."""
    if hasattr(attn, "scaling"):
        return float(attn.scaling)
    scale = attn.head_dim ** -0.5 if attn.scale_attn_weights else 1.0
    return scale / (layer_idx + 1) if attn.scale_attn_by_inverse_layer_idx else scale


def _signature(lm) -> tuple:
    return tuple(signature(p) for p in lm.parameters())


class Linear(NamedTuple):
    weight: torch.Tensor            # packed (oneDNN) on a CPU, else Conv1D's (in, out) weight
    bias: torch.Tensor


class Block(NamedTuple):
    ln_1: torch.nn.Module
    ln_2: torch.nn.Module
    act: torch.nn.Module            # the MLP activation, called as it is when it is not fused
    scale: float                    # the factor on q.k
    qkv: Linear
    proj: Linear
    fc: Linear
    fc2: Linear
    fc_gelu: Callable | None        # c_fc with its GELU fused in (oneDNN), when the CPU path has one


class GPT2Steps:
    def __init__(self, lm):
        t = lm.transformer
        self.signature = _signature(lm)
        self.n_head = lm.config.n_head
        self.wte, self.wpe, self.ln_f = t.wte.weight, t.wpe.weight, t.ln_f
        self.cpu = self.wte.device.type == "cpu"
        self.linear = cpu_linear(self.wte.dtype) if self.cpu else F.linear
        self.blocks = []
        for i, blk in enumerate(t.h):
            convs = (blk.attn.c_attn, blk.attn.c_proj, blk.mlp.c_fc, blk.mlp.c_proj)
            mats = [Linear(pack(c.weight.detach().t()) if self.cpu else c.weight.detach(), c.bias.detach())
                    for c in convs]
            gelu = _gelu_kind(blk.mlp.act) if self.cpu else None
            self.blocks.append(Block(blk.ln_1, blk.ln_2, blk.mlp.act, _scaling(blk.attn, i), *mats,
                                     cpu_linear(self.wte.dtype, gelu) if gelu else None))
        head = lm.lm_head.weight.detach()
        self.head = pack(head) if self.cpu else head
        self.head_bias = None if lm.lm_head.bias is None else lm.lm_head.bias.detach()

    def stale(self, lm) -> bool:
        return _signature(lm) != self.signature

    def _lin(self, x: torch.Tensor, lin: Linear) -> torch.Tensor:
        return self.linear(x, lin.weight, lin.bias) if self.cpu else torch.addmm(lin.bias, x, lin.weight)

    def _mlp_in(self, x: torch.Tensor, blk: Block) -> torch.Tensor:
        return blk.fc_gelu(x, *blk.fc) if blk.fc_gelu is not None else blk.act(self._lin(x, blk.fc))

    @torch.inference_mode()
    def prefill(self, embeds: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Run the whole input (B, T, C) (`lm_input.build_lm_input`'s embeddings: no padding, so plain causal
        attention); returns the last position's logits (B, vocab) float32 and each layer's (keys, values),
        (B, H, T, D)."""
        b, t, c = embeds.shape
        h = self.n_head
        x = embeds + self.wpe[:t]
        kv = []
        for blk in self.blocks:
            qkv = self._lin(blk.ln_1(x).view(b * t, c), blk.qkv)
            q, k, v = qkv.view(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
            kv.append((k, v))
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=blk.scale)
            x = x + self._lin(att.transpose(1, 2).reshape(b * t, c), blk.proj).view(b, t, c)
            x = x + self._lin(self._mlp_in(blk.ln_2(x).view(b * t, c), blk), blk.fc2).view(b, t, c)
        return self.linear(self.ln_f(x[:, -1]), self.head, self.head_bias).float(), kv

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, cache) -> torch.Tensor:
        """Next-token logits (B, vocab), float32, for `tokens` (B,) after what `cache` holds; the cache
        (decoding's growing layers) gets the new keys and values."""
        layers = cache.layers
        pos = layers[0].get_seq_length()                     # every row has seen the same number of tokens
        x = F.embedding(tokens, self.wte) + self.wpe[pos]    # (B, C)
        b, c = x.shape
        h = self.n_head
        for blk, layer in zip(self.blocks, layers):
            q, k, v = self._lin(blk.ln_1(x), blk.qkv).view(b, 3, h, c // h).unbind(1)   # (B, H, D) each
            keys, values = layer.update(k[:, :, None], v[:, :, None])                  # (B, H, pos+1, D) views
            att = torch.matmul(q[:, :, None], keys.transpose(-1, -2)).mul_(blk.scale).softmax(-1)
            x = x + self._lin(torch.matmul(att, values).view(b, c), blk.proj)
            x = x + self._lin(self._mlp_in(blk.ln_2(x), blk), blk.fc2)
        return self.linear(self.ln_f(x), self.head, self.head_bias).float()
