"""The tiny kit's training loop: seeded AdamW steps on one thread, with a progress bar and partial work kept.

    model = train_steps(model, step_loss, steps=500, lr=2e-3, partial=folder, desc="tiny CLIP")

`step_loss(rng)` draws its own batch from the NumPy generator it is given and returns the loss. Every
`every` steps the model, AdamW's moments, the LR schedule and both RNG states (NumPy's and torch's,
which draws dropout masks) are written to `partial` (safetensors + JSON, never a pickle, swapped in
atomically); a build that was interrupted (Ctrl-C, a kernel restart, kill -9) goes on from there and
ends with the same weights as one that ran through. One torch thread: the tiny models gain nothing
from more, and on a busy 2-core machine a step took 3.7x longer with two (base/threads.py).
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..base.files import write_folder
from ..base.threads import torch_threads
from ..core.checkpoint import load_optimizer, optimizer_tensors

STATE_JSON, STATE_TENSORS = "state.json", "state.safetensors"


def warmup_cosine(steps: int) -> Callable[[int], float]:
    """LR factor at step s: linear warm-up over the first 5% of the steps, then a cosine decay to 0."""
    warmup = max(1, steps // 20)
    return lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps))


def _trained(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _save(partial: Path, step: int, model, opt, sched, rng: np.random.Generator) -> None:
    names = [n for n, _ in _trained(model)]
    tensors, opt_meta = optimizer_tensors(opt, names)
    # cloned: tied weights (GPT-2's embedding and LM head) share memory, which safetensors refuses
    tensors.update({f"model/{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()})
    tensors["rng/torch"] = torch.get_rng_state()
    meta = {"step": step, "optimizer": opt_meta, "scheduler": sched.state_dict(),
            "numpy_rng": rng.bit_generator.state}

    def fill(d: Path):
        save_file(tensors, str(d / STATE_TENSORS))
        (d / STATE_JSON).write_text(json.dumps(meta))
    write_folder(partial, fill)


def _resume(partial: Path | None, model, opt, sched, rng: np.random.Generator) -> int:
    """The step saved in `partial` with every state restored, or 0 when there is nothing (usable) there."""
    if partial is None or not (partial / STATE_JSON).is_file():
        return 0
    try:
        meta = json.loads((partial / STATE_JSON).read_text())
        tensors = load_file(str(partial / STATE_TENSORS))
        model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        load_optimizer(opt, [n for n, _ in _trained(model)], tensors, meta["optimizer"])
        sched.load_state_dict(meta["scheduler"])
        rng.bit_generator.state = meta["numpy_rng"]
        torch.set_rng_state(tensors["rng/torch"])
        return int(meta["step"])
    except Exception:  # noqa: BLE001 - partial work from another version or a damaged file: start afresh
        shutil.rmtree(partial, ignore_errors=True)
        return 0


def train_steps(model: torch.nn.Module, step_loss: Callable[[np.random.Generator], torch.Tensor], *, steps: int,
                lr: float, weight_decay: float = 0.05, seed: int = 0, partial: Path | None = None, every: int = 50,
                desc: str = "building", progress: bool = True) -> torch.nn.Module:
    """Train `model` for `steps` AdamW steps of `step_loss(rng)`, resuming from `partial`; returns it in eval
    mode. The caller removes `partial` once the result is stored (`finish`)."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW([p for _, p in _trained(model)], lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps))
    model.train()
    start = _resume(partial, model, opt, sched, rng)
    with torch_threads(1), tqdm(total=steps, initial=start, desc=desc, disable=not progress, leave=False) as bar:
        for step in range(start, steps):
            loss = step_loss(rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if partial is not None and (step + 1) % every == 0 and step + 1 < steps:
                _save(partial, step + 1, model, opt, sched, rng)
    return model.eval()


def finish(partial: Path | None) -> None:
    """Drop the partial work of a build whose result is now stored."""
    if partial is not None:
        shutil.rmtree(partial, ignore_errors=True)
