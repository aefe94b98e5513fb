"""Where a run's numbers go besides the console: TensorBoard (when installed) and Weights & Biases (when asked)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..base.errors import ClipPrefixError


class RunLoggers:
    """TensorBoard events in `out/tb` and an optional W&B run, resumed under the same id."""

    def __init__(self, out: Path, *, tensorboard: bool, wandb_project: str | None, config: dict, step: int,
                 wandb_id: str | None, log: Callable[[str], None]):
        self.tb = self.wandb = None
        self.wandb_id = wandb_id
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter   # optional: the `train` extra
                self.tb = SummaryWriter(str(out / "tb"), purge_step=step or None)
            except ImportError:
                log("note: TensorBoard logging is off (pip install tensorboard to turn it on)")
        if wandb_project:
            try:
                import wandb   # optional: only when asked for
            except ImportError as e:
                raise ClipPrefixError("W&B logging was asked for but wandb is not installed; pip install wandb.") from e
            self.wandb_id = self.wandb_id or wandb.util.generate_id()
            self.wandb = wandb.init(project=wandb_project, config=config, dir=str(out), id=self.wandb_id, resume="allow")

    def scalars(self, values: dict, step: int) -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def samples(self, samples: list[dict], step: int) -> None:
        if self.tb is not None and samples:
            self.tb.add_text("samples", "\n\n".join(f"`{s['id']}`: {s['prediction']}" for s in samples), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
