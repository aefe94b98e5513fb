"""The fastest `linear(x, weight (out, in), bias)` for CPU tensors, for the encoder and the decoder.

PyTorch sends fp32 matrix products on a CPU to MKL, which runs AMD CPUs at AVX2 speed; oneDNN, which
PyTorch also ships (and already uses for bf16/fp16), runs them at AVX-512 speed. oneDNN also wants its
weights in a blocked layout of its own: handed a plain (out, in) weight, it re-lays it out on every
call. `pack` does that once (timings per CPU: benchmarks/README.md). Results are bit-identical between
packed and plain, and agree with F.linear to float rounding.

    linear = cpu_linear(torch.float32)         # oneDNN where this torch runs that dtype, else F.linear
    w = pack(weight)                            # oneDNN's layout (an opaque tensor) where `linear` is oneDNN's
    y = linear(x, w, bias)                      # or cpu_linear(dtype, gelu="tanh") for GELU(linear(...))
    use_cpu_linear(clip_model)                  # its nn.Linear and attention layers run through it on the CPU
    use_stock_linear(clip_model)                # and back to the stock classes (before leaving the CPU)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

_WORKS: dict[torch.dtype, bool] = {}
# our activation name -> oneDNN's post-op and its algorithm
_POST_OP = {None: ("none", ""), "none": ("gelu", "none"), "tanh": ("gelu", "tanh"), "swish": ("swish", "")}


def _onednn(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, act: str | None = None) -> torch.Tensor:
    """oneDNN's linear, then `act`: None, GELU "none" (erf) / "tanh", or "swish" (y * sigmoid(y))."""
    op, algorithm = _POST_OP[act]
    return torch.ops.mkldnn._linear_pointwise(x, w, b, op, [], algorithm)


def onednn_works(dtype: torch.dtype) -> bool:
    """Whether this torch's oneDNN linear (plain and packed) runs `dtype` on this CPU; checked once against
    F.linear. fp32 and bf16 only: oneDNN's fp16 on a CPU without fp16 units is slower than F.linear."""
    if dtype not in _WORKS:
        ok = False
        if dtype in (torch.float32, torch.bfloat16):
            try:
                x, w = torch.ones(2, 3, dtype=dtype), torch.ones(4, 3, dtype=dtype)
                want = torch.full((2, 4), 3.0, dtype=dtype)
                ok = torch.equal(_onednn(x, w, None), want) and torch.equal(_onednn(x, _reorder(w), None), want)
            except (RuntimeError, AttributeError, NotImplementedError):      # a torch built without oneDNN
                ok = False
        _WORKS[dtype] = ok
    return _WORKS[dtype]


def _reorder(w: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(w.detach().contiguous())


def cpu_linear(dtype: torch.dtype, gelu: str | None = None):
    """`f(x, weight, bias)` = x @ weight.T + bias, then GELU when `gelu` is "none" (exact, erf) or "tanh"
    (GPT-2's approximation): oneDNN's linear (the GELU fused in) where it runs `dtype`, else F.linear.
    `weight` may be plain (out, in) or `pack`ed."""
    if onednn_works(dtype):
        return _onednn if gelu is None else (lambda x, w, b: _onednn(x, w, b, gelu))
    if gelu is None:
        return F.linear
    return lambda x, w, b: F.gelu(F.linear(x, w, b), approximate=gelu)


def pack(weight: torch.Tensor) -> torch.Tensor:
    """`weight` (out, in) in oneDNN's own layout, for `cpu_linear(weight.dtype)` on the CPU; the weight
    itself where that is not oneDNN's (another device or dtype, no oneDNN). A packed weight is a copy,
    opaque to every other op, and does not follow later changes to `weight`."""
    if weight.device.type == "cpu" and onednn_works(weight.dtype):
        with torch.no_grad():
            return _reorder(weight)
    return weight


_PACKED: WeakIdKeyDictionary = WeakIdKeyDictionary()     # parameter -> (its signature, packed copy)


def signature(weight: torch.Tensor) -> tuple:
    """What identifies `weight`'s current values for a cached copy: storage, version counter, dtype, device,
    and a sum of every 1009th element. The sum is needed because fused optimizers (AdamW(fused=True),
    which the trainer uses) update parameters in place without bumping their version counter; and it is
    all there is for tensors made under `torch.inference_mode()`, which have no version counter."""
    with torch.no_grad():
        probe = float(weight.detach().reshape(-1)[::1009].float().sum())
    version = None if weight.is_inference() else weight._version
    return weight.data_ptr(), version, weight.dtype, weight.device, probe


def packed(weight: torch.Tensor) -> torch.Tensor:
    """`pack(weight)`, kept for as long as `weight` lives and made again when it changes (in place, moved,
    loaded into, or stepped by an optimizer): for modules whose weights are read at every call."""
    sig = signature(weight)
    hit = _PACKED.get(weight)
    if hit is None or hit[0] != sig:
        hit = _PACKED[weight] = (sig, pack(weight))
    return hit[1]


def _layer_weight(weight: torch.Tensor) -> torch.Tensor:
    """What a swapped layer hands oneDNN: a packed copy in bf16, the weight itself in fp32, where packing
    gained nothing at CLIP's sizes and would double the tower's memory (benchmarks/README.md)."""
    return weight if weight.dtype == torch.float32 else packed(weight)


QUICK = 1.702   # QuickGELU(y) = y * sigmoid(1.702 y) = swish(1.702 y) / 1.702, and oneDNN fuses swish


def _quick_gelu(y: torch.Tensor) -> torch.Tensor:
    return y * torch.sigmoid(QUICK * y)


def _fast(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Inference on the CPU in a dtype oneDNN runs: what the fast path covers (training keeps autograd)."""
    return (x.device.type == "cpu" and x.dtype == weight.dtype and onednn_works(x.dtype)
            and not (torch.is_grad_enabled() and weight.requires_grad))


class CpuLinear(nn.Linear):
    """An nn.Linear (same parameters, same state dict) that runs inference on the CPU through oneDNN (bf16
    from a packed copy of its weight). `gelu` ("none"/"tanh" for nn.GELU, "quick" for OpenAI's QuickGELU; set by
    `use_cpu_linear` when such a module follows it, which then becomes an identity) applies that
    activation to the output on every path; oneDNN fuses it into the product (unfused, QuickGELU's three
    passes over a (frames x 50, 3072) tensor are fresh pages each time)."""

    gelu: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _fast(x, self.weight):
            w = _layer_weight(self.weight)
            if self.gelu == "quick":     # swish(1.702 y) / 1.702, with 1.702 y = W (1.702 x) + 1.702 b
                b = None if self.bias is None else self.bias * QUICK
                return _onednn(x * QUICK, w, b, "swish").mul_(1.0 / QUICK)
            return _onednn(x, w, self.bias, self.gelu)
        y = super().forward(x)
        if self.gelu == "quick":
            return _quick_gelu(y)
        return y if self.gelu is None else F.gelu(y, approximate=self.gelu)


class CpuMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention whose unmasked batch-first self-attention at inference on the CPU runs its
    two projections through oneDNN (CLIP's vision tower: a third of its products); anything else (masks,
    cross-attention, weights asked for, training) takes nn.MultiheadAttention's own path."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if (query is key is value and query.dim() == 3 and self.batch_first and _fast(query, self.in_proj_weight)
                and key_padding_mask is None and attn_mask is None and not need_weights and not is_causal
                and self._qkv_same_embed_dim and self.bias_k is None and not self.add_zero_attn):
            b, t, c = query.shape
            h = self.num_heads
            qkv = _onednn(query, _layer_weight(self.in_proj_weight), self.in_proj_bias).view(b, t, 3, h, c // h)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                     # (B, H, T, D) each
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, c)
            return _onednn(out, _layer_weight(self.out_proj.weight), self.out_proj.bias), None
        return super().forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                               attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal)


class _FusedAway(nn.Identity):
    """Where an activation module was before `use_cpu_linear` fused it into the linear layer that feeds it
    (the module itself is kept, so `use_stock_linear` puts the very same one back)."""

    def __init__(self, original: nn.Module, approximate: str):
        super().__init__()
        self.approximate = approximate
        self.__dict__["original"] = original      # not a submodule: it has no parameters and runs nowhere

    def extra_repr(self) -> str:
        return f"{self.original!r} fused into the linear before"


def _is_quick_gelu(m: nn.Module) -> bool:
    """open_clip's QuickGELU (x * sigmoid(1.702 x)), recognised by name: open_clip need not be imported."""
    return type(m).__name__ == "QuickGELU" and type(m).__module__.startswith("open_clip")


def use_cpu_linear(model: nn.Module) -> nn.Module:
    """Make every plain nn.Linear of `model` a `CpuLinear` and every nn.MultiheadAttention a
    `CpuMultiheadAttention` (in place, same parameters and state dict; subclasses of nn.Linear such as
    attention's out_proj, which their owners call functionally, are left alone). In an nn.Sequential,
    an nn.Linear followed by an nn.GELU or open_clip's QuickGELU takes the activation into its own call
    (open_clip's MLPs). Returns `model`; `use_stock_linear` undoes it."""
    for m in model.modules():
        if type(m) is nn.Linear:
            m.__class__ = CpuLinear
        elif type(m) is nn.MultiheadAttention:
            m.__class__ = CpuMultiheadAttention
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            names = list(seq._modules)
            for a, b in zip(names, names[1:]):
                lin, act = seq._modules[a], seq._modules[b]
                if type(lin) is CpuLinear and lin.gelu is None and type(act) is nn.GELU:
                    lin.gelu = act.approximate
                    seq._modules[b] = _FusedAway(act, act.approximate)
                elif type(lin) is CpuLinear and lin.gelu is None and _is_quick_gelu(act):
                    lin.gelu = "quick"
                    seq._modules[b] = _FusedAway(act, "quick")
    return model


def use_stock_linear(model: nn.Module) -> nn.Module:
    """Undo `use_cpu_linear`: the stock nn.Linear / nn.MultiheadAttention classes and the activation modules
    back in their places (in place; same parameters). Returns `model`."""
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            for name, m in list(seq._modules.items()):
                if type(m) is _FusedAway:
                    seq._modules[name] = m.original
    for m in model.modules():
        if type(m) is CpuLinear:
            m.__dict__.pop("gelu", None)
            m.__class__ = nn.Linear
        elif type(m) is CpuMultiheadAttention:
            m.__class__ = nn.MultiheadAttention
    return model
