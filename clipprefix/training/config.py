"""What a training run is told (`TrainConfig`) and what it gives back (`TrainResult`: checkpoints, history,
loss curves that render in notebooks)."""
from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..base.notebook import InlineFigure, caption_html


@dataclass
class TrainConfig:
    cache: str                          # feature cache folder (features.extract) holding the training items
    out: str                            # run folder
    init: str = "tiny"                  # config name (fresh model) or checkpoint to go on from
    val_cache: str | None = None        # validation cache; default: the cache's `val_split` items, if any
    train_split: str | None = None      # items of `cache` to train on (default: all; 'train' in an 'all' cache)
    val_split: str = "val"
    mapper: dict = field(default_factory=dict)   # mapper overrides for a fresh model (prefix_length=...)
    train_lm: bool | None = None        # fine-tune the LM too (None: the recipe's / config's choice)
    epochs: int = 10
    batch_size: int = 40                # per process and micro-batch (ClipCap: 40)
    grad_accum: int = 1
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_steps: int | None = None     # default: warmup_ratio of the run; always clipped to the run
    warmup_ratio: float = 0.05
    grad_clip: float | None = 1.0
    precision: str = "auto"             # auto | fp32 | bf16 | fp16 (autocast on GPUs; the CPU trains in fp32)
    seed: int = 0
    max_tokens: int | None = None       # truncate captions to this many tokens (EOS included)
    num_frames: int | None = None       # resample every item to this many frames (default: as cached)
    group_by_length: bool = True
    save_every_steps: int | None = None  # also save a resumable state every N optimizer steps
    keep_checkpoints: int = 3
    sample_items: int = 4               # validation items captioned (greedy) after every epoch
    log_every: int = 50
    tensorboard: bool = True
    wandb: str | None = None            # W&B project name; off unless given
    resume: bool = False                # go on from the newest state in `out`
    stop_after_steps: int | None = None  # stop (with a saved state) after this many optimizer steps in total
    device: str = "auto"
    threads: int | None = None          # CPU threads for torch (default: the recipe's, else torch's)
    verbose: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    out: Path
    best_checkpoint: Path               # lowest validation loss (the last one when there is no validation)
    last_checkpoint: Path
    history: list[dict]
    global_step: int
    seconds: float
    finished: bool                      # False when stopped by stop_after_steps

    def plot(self):
        """Loss curves: training loss (mean per epoch) and validation loss, as a matplotlib Figure that shows
        itself as a PNG in notebooks (`.savefig(...)` writes it)."""
        fig = InlineFigure(figsize=(6, 3.5), layout="constrained")
        ax = fig.add_subplot()
        epochs = [r["epoch"] for r in self.history]
        ax.plot(epochs, [r["train_loss"] for r in self.history], "o-", label="train")
        if any(r["val_loss"] is not None for r in self.history):
            ax.plot(epochs, [r["val_loss"] for r in self.history], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy per token")
        ax.legend()
        return fig

    def _repr_html_(self) -> str:
        """Per epoch: losses and the captions written for the sample items."""
        rows = []
        for r in self.history:
            caps = "<br>".join(f"<code>{html.escape(str(s['id']))}</code> {caption_html(s['prediction'])}"
                               for s in r["samples"])
            val = f"{r['val_loss']:.4f}" if r["val_loss"] is not None else "-"
            rows.append(f"<tr><td>{r['epoch']}</td><td>{r['train_loss']:.4f}</td><td>{val}</td>"
                        f"<td>{r['samples_per_s']:.0f}</td><td style='text-align:left'>{caps}</td></tr>")
        return ("<table><tr><th>epoch</th><th>train loss</th><th>val loss</th><th>samples/s</th>"
                f"<th>sample captions</th></tr>{''.join(rows)}</table><small>best: {html.escape(str(self.best_checkpoint))}"
                "</small>")
