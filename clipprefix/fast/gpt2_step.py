"""GPT-2's forward pass for one new token per row, written out for the decoder's inner loop.

    steps = gpt2_steps(lm)                  # None for models this does not cover (they take transformers' path)
    logits, kv = steps.prefill(embeds)      # the prefix (and prompt): last logits, each layer's keys/values
    logits = steps(tokens, cache)           # tokens (B,), cache: the growing KV cache decoding.py keeps

The same weights and the same arithmetic as transformers' GPT2LMHeadModel (pinned by tests: the tokens
equal the no-cache reference, the logits transformers' own), minus what one token per row never needs
(masks, position ids, output objects), and on a CPU with the matrix products that CPU runs fastest.
Measured on a 2-core AVX-512 AMD CPU, GPT-2 small, all weights streamed from memory as in decoding:

- fp32 products go to MKL, which runs this CPU at AVX2 speed: oneDNN's linear (`cpu_linear.py`) does
  a step's block weights in 32 ms against 73 ms at batch 32, 13 against 17 ms at batch 1, and the LM
  head in 15 against 39 ms;
- oneDNN wants its weights in a blocked layout of its own (`cpu_linear.pack`), and handed GPT-2's
  Conv1D (in, out) or even an (out, in) weight it re-lays it out at every call. Packed once, the LM
  head at batch 1 takes 1.1 against 5.1 ms in bf16 (3.1 against 4.7 ms fp32); at batch 32, 4.6 against
  7.5 ms; bench_caption's greedy batch-32 bf16 went from 33-43x to 43-54x the reference loop;
- GPT-2's MLP activation (tanh GELU) is fused into the c_fc product.

So on a CPU the block weights and the LM head get packed copies (made on first use, rebuilt when a
weight changes, kept as long as the model: 4 bytes x 124M for GPT-2 small in fp32, half in bf16); on a
GPU nothing is copied.
"""
from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from .cpu_linear import cpu_linear, pack

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
    """'tanh' / 'none' when `act` is a GELU oneDNN can fuse (nn.GELU, as `model.fuse_gelu` leaves GPT-2's,
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
    return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in lm.parameters())


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
            mats = tuple((pack(c.weight.detach().t()) if self.cpu else c.weight.detach(), c.bias.detach())
                         for c in convs)
            gelu = _gelu_kind(blk.mlp.act) if self.cpu else None
            self.blocks.append((blk.ln_1, blk.ln_2, blk.mlp.act, _scaling(blk.attn, i), mats,
                                cpu_linear(self.wte.dtype, gelu) if gelu else None))
        head = lm.lm_head.weight.detach()
        self.head = pack(head) if self.cpu else head
        self.head_bias = None if lm.lm_head.bias is None else lm.lm_head.bias.detach()

    def stale(self, lm) -> bool:
        return _signature(lm) != self.signature

    def _lin(self, x: torch.Tensor, wb) -> torch.Tensor:
        w, b = wb
        return self.linear(x, w, b) if self.cpu else torch.addmm(b, x, w)

    def _mlp_in(self, x: torch.Tensor, act, fc, fc_gelu) -> torch.Tensor:
        return fc_gelu(x, *fc) if fc_gelu is not None else act(self._lin(x, fc))

    @torch.inference_mode()
    def prefill(self, embeds: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Run the whole input (B, T, C) (`lm_input.build_lm_input`'s embeddings: no padding, so plain causal
        attention); returns the last position's logits (B, vocab) float32 and each layer's (keys, values),
        (B, H, T, D)."""
        b, t, c = embeds.shape
        h = self.n_head
        x = embeds + self.wpe[:t]
        kv = []
        for ln_1, ln_2, act, scale, (qkv, proj, fc, fc2), fc_gelu in self.blocks:
            q, k, v = self._lin(ln_1(x).view(b * t, c), qkv).view(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
            kv.append((k, v))
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
            x = x + self._lin(att.transpose(1, 2).reshape(b * t, c), proj).view(b, t, c)
            x = x + self._lin(self._mlp_in(ln_2(x).view(b * t, c), act, fc, fc_gelu), fc2).view(b, t, c)
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
        for (ln_1, ln_2, act, scale, (qkv, proj, fc, fc2), fc_gelu), layer in zip(self.blocks, layers):
            q, k, v = self._lin(ln_1(x), qkv).view(b, 3, h, c // h).unbind(1)      # (B, H, D) each
            keys, values = layer.update(k[:, :, None], v[:, :, None])              # (B, H, pos+1, D) views
            att = torch.matmul(q[:, :, None], keys.transpose(-1, -2)).mul_(scale).softmax(-1)
            x = x + self._lin(torch.matmul(att, values).view(b, c), proj)
            x = x + self._lin(self._mlp_in(ln_2(x), act, fc, fc_gelu), fc2)
        return self.linear(self.ln_f(x), self.head, self.head_bias).float()
