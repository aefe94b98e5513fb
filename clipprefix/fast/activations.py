"""GPT-2's GELU in one pass.

transformers' `NewGELUActivation` (GPT-2's `gelu_new`) computes 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
in five elementwise passes (pow, mul, add, tanh, mul); PyTorch's `nn.GELU(approximate="tanh")` is the
same formula in one fused kernel. Swapping one for the other changes no weight and no state dict.
"""
from __future__ import annotations

from torch import nn


def fuse_gelu(lm: nn.Module) -> nn.Module:
    """Swap every `NewGELUActivation` module of `lm` for `nn.GELU(approximate="tanh")`, in place; returns `lm`."""
    for module in list(lm.modules()):
        for name, child in list(module.named_children()):
            if type(child).__name__ == "NewGELUActivation":
                setattr(module, name, nn.GELU(approximate="tanh"))
    return lm
