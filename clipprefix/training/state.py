"""Resumable training state, in safetensors + JSON (never pickle): optimizer tensors, RNG states, the saved
state folders of a run and the `last` link."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as torch_dist

from ..core.checkpoint import load_optimizer, optimizer_tensors  # noqa: F401 - the trainer's names
from .distributed import Dist

STATE_JSON, STATE_TENSORS = "trainer_state.json", "trainer_state.safetensors"


def rng_states(d: Dist, device: torch.device) -> dict[str, torch.Tensor]:
    """This process's RNG states, gathered from every rank (each rank draws its own dropout masks)."""
    mine = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(device)
    if d.world == 1:
        return {f"rng/{k}/0": v for k, v in mine.items()}
    gathered: list = [None] * d.world
    torch_dist.all_gather_object(gathered, {k: v.tolist() for k, v in mine.items()})
    return {f"rng/{k}/{r}": torch.tensor(v, dtype=torch.uint8) for r, g in enumerate(gathered) for k, v in g.items()}


def restore_rng(tensors: dict, d: Dist, device: torch.device) -> None:
    cpu = tensors.get(f"rng/cpu/{d.rank}")
    if cpu is not None:
        torch.set_rng_state(cpu)
    cuda = tensors.get(f"rng/cuda/{d.rank}")
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)


def state_folders(out: Path) -> list[tuple[int, Path]]:
    """Saved states in `out/checkpoints`, oldest first, as (global_step, folder)."""
    found = []
    for p in (out / "checkpoints").glob("*"):
        f = p / STATE_JSON
        if p.is_dir() and not p.name.startswith(".") and f.is_file():
            found.append((json.loads(f.read_text())["global_step"], p))
    return sorted(found)


def point_symlink(link: Path, target: Path) -> None:
    """Point `link` at `target` atomically (a convenience; last.json is the record)."""
    tmp = link.parent / f".{link.name}.tmp-{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:    # no symlinks here (some Windows setups): last.json still says where it is
        if tmp.is_symlink():
            tmp.unlink()


def clean_leftovers(out: Path) -> None:
    """Remove what a kill during a save left in run folder `out`: half-written folders, never renamed into
    place; or put back the old best/, moved aside just before the new one came."""
    for tmp in (out / "checkpoints").glob(".*"):
        shutil.rmtree(tmp, ignore_errors=True)
    for tmp in out.glob(".best.*"):
        if ".old-" in tmp.name and not (out / "best").exists():
            os.rename(tmp, out / "best")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
