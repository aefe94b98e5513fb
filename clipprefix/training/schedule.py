"""The learning-rate schedule (linear warm-up, then linear decay) and mixed precision (autocast on GPUs only)."""
from __future__ import annotations

import torch

from ..base.errors import ClipPrefixError


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then linear decay towards 0 at `total` (step is 0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def effective_warmup(steps: int | None, ratio: float, total: int) -> int:
    """Warm-up steps: `steps`, else `ratio` of the run; never more than the run itself."""
    warm = steps if steps is not None else round(ratio * total)
    return max(0, min(int(warm), total))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ClipPrefixError(f"precision must be auto, fp32, bf16 or fp16, not '{precision}'.")
    if device.type != "cuda" or precision == "fp32":
        return None                       # autocast on GPUs only; a CPU trains in fp32
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
