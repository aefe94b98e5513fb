"""Which device a run uses: `auto` is the first CUDA GPU when there is one (one per process under
torchrun), else the CPU."""
from __future__ import annotations

import os

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """`auto`/None -> cuda (cuda:LOCAL_RANK under torchrun) when available, else cpu; anything else as given."""
    if device is None or str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        device = "cuda"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}")
    return device
