"""The fastest `linear(x, weight (out, in), bias)` for CPU tensors, for the encoder and the decoder.

PyTorch sends fp32 matrix products on a CPU to MKL, which runs AMD CPUs at AVX2 speed; oneDNN, which
PyTorch also ships (and already uses for bf16/fp16), runs them at AVX-512 speed. Measured on a 2-core
AMD EPYC (AVX-512), fp32, GPT-2-small-sized weights: 83.9 ms against 188 ms for the twelve blocks'
products at 160 rows, 32 against 73 ms at 32 rows, 13 against 17-20 ms at one row (`gpt2_step.py`,
benchmarks/bench_caption.py). Results agree with F.linear to float rounding (~1e-6 relative).

    linear = cpu_linear(torch.float32)         # oneDNN where this torch has it, else F.linear
    use_cpu_linear(clip_model)                 # its nn.Linear and attention layers run through it on the CPU
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_ONEDNN: bool | None = None


def _onednn_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


def _has_onednn() -> bool:
    try:
        return torch.equal(_onednn_linear(torch.ones(1, 3), torch.ones(2, 3), None), torch.full((1, 2), 3.0))
    except (RuntimeError, AttributeError, NotImplementedError):      # a torch built without oneDNN
        return False


def cpu_linear(dtype: torch.dtype):
    """oneDNN's linear for fp32 where this torch has it (F.linear's fp32 path is MKL's), else F.linear
    (whose bf16/fp16 path is oneDNN already)."""
    global _ONEDNN
    if _ONEDNN is None:
        _ONEDNN = _has_onednn()
    return _onednn_linear if dtype == torch.float32 and _ONEDNN else F.linear


class CpuLinear(nn.Linear):
    """An nn.Linear (same parameters, same state dict) that takes `cpu_linear` for inference on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not (torch.is_grad_enabled() and self.weight.requires_grad) \
                and x.dtype == self.weight.dtype:
            return cpu_linear(x.dtype)(x, self.weight, self.bias)
        return super().forward(x)


class CpuMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention whose unmasked batch-first self-attention at inference on the CPU runs its
    two projections through `cpu_linear` (CLIP's vision tower: a third of its products); anything else
    (masks, cross-attention, weights asked for, training) takes nn.MultiheadAttention's own path."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if (query is key is value and query.device.type == "cpu" and query.dim() == 3 and self.batch_first
                and key_padding_mask is None and attn_mask is None and not need_weights and not is_causal
                and self._qkv_same_embed_dim and self.bias_k is None and not self.add_zero_attn
                and not (torch.is_grad_enabled() and self.in_proj_weight.requires_grad)
                and query.dtype == self.in_proj_weight.dtype):
            linear = cpu_linear(query.dtype)
            b, t, c = query.shape
            h = self.num_heads
            qkv = linear(query, self.in_proj_weight, self.in_proj_bias).view(b, t, 3, h, c // h)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                     # (B, H, T, D) each
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, c)
            return linear(out, self.out_proj.weight, self.out_proj.bias), None
        return super().forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                               attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal)


def use_cpu_linear(model: nn.Module) -> nn.Module:
    """Make every plain nn.Linear of `model` a `CpuLinear` and every nn.MultiheadAttention a
    `CpuMultiheadAttention` (in place, same parameters; subclasses of nn.Linear such as attention's
    out_proj, which their owners call functionally, are left alone). Returns `model`."""
    for m in model.modules():
        if type(m) is nn.Linear:
            m.__class__ = CpuLinear
        elif type(m) is nn.MultiheadAttention:
            m.__class__ = CpuMultiheadAttention
    return model
