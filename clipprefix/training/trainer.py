"""Training a captioner on CLIP feature caches: the mapper alone (frozen LM) or the mapper and the LM.

    from clipprefix import TrainConfig, train
    result = train(TrainConfig(cache="data/processed/features/coco_train_tiny_uniform-16", init="tiny",
                               out="runs/tiny", epochs=8))                  # ~1 min on a laptop CPU
    Captioner.from_pretrained(result.best_checkpoint).caption_images(["photo.jpg"])

    clipprefix train --cache DIR [--val-cache DIR] --config tiny --out runs/x --epochs 8
    torchrun --nproc-per-node 8 -m clipprefix.cli train ...                # DDP, the same command

`init` names a config (`clipprefix presets`: tiny, tiny-video, clipcap-mlp, clipcap-transformer,
msrvtt-video) for a fresh model, or a checkpoint (folder, preset, Hub id) to go on training. Fields
left None take the config's recipe (`core/configs/*.json`: the tiny models learn at 1e-3 and fine-tune
their randomly initialised LM; the GPT-2 ones use ClipCap's 2e-5).

Batches come from `pairs.py`; AdamW, linear warm-up then linear decay (`schedule.py`), gradient
clipping and accumulation, bf16/fp16 autocast on GPUs only; DDP under torchrun (`distributed.py`);
states in safetensors + JSON (`state.py`).

The run folder's layout is described in `training/__init__.py`.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel as DDP

from ..base.errors import ClipPrefixError
from ..base.files import atomic_write_text, write_folder
from ..base.threads import torch_threads
from ..core import presets
from ..core.captioner import Captioner, new_captioner
from .config import TrainConfig, TrainResult
from .loggers import RunLoggers
from .distributed import all_sum, barrier, setup_distributed, shutdown
from .pairs import CaptionPairs, epoch_order, training_data
from .schedule import autocast_dtype, effective_warmup, lr_factor
from .state import (STATE_JSON, STATE_TENSORS, clean_leftovers, load_optimizer, optimizer_tensors, point_symlink,
                    restore_rng, rng_states, state_folders)


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.dist, self.device = setup_distributed(cfg.device)
        self.history: list[dict] = []
        self.best = math.inf
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.epoch_loss = [0.0, 0]          # sum and count of step losses so far in this epoch
        self.loggers: RunLoggers | None = None
        self._wandb_id: str | None = None

    @classmethod
    def for_model(cls, cfg: TrainConfig, model, train_data: CaptionPairs, *, lr: float) -> "Trainer":
        """A trainer over a given model and pairs, ready to `step` (no run folder, no checkpoints): what
        benchmarks/bench_train.py times."""
        tr = cls(cfg)
        tr.model, tr.train_data, tr.lr = model.to(tr.device), train_data, lr
        tr.setup_optimization()
        tr.model.train()
        return tr

    # -- setup
    def _log(self, msg: str) -> None:
        if self.cfg.verbose and self.dist.main:
            print(msg, flush=True)

    def _build(self) -> None:
        cfg = self.cfg
        resume_from = self._resume_folder()
        recipe = presets.recipe(cfg.init)
        self.lr = cfg.lr if cfg.lr is not None else recipe["lr"]
        train_lm = cfg.train_lm if cfg.train_lm is not None else recipe["train_lm"]
        if resume_from is not None:
            cap = Captioner.from_pretrained(resume_from)
        elif cfg.init in presets.config_names():
            cap = new_captioner(cfg.init, seed=cfg.seed, **cfg.mapper)
        else:
            cap = Captioner.from_pretrained(cfg.init)
        if train_lm is not None:
            cap.config["lm"]["trainable"] = bool(train_lm)
            cap.model.set_train_lm(bool(train_lm))
        cap.to(self.device, torch.float32)
        self.cap = cap
        self.model = cap.model

        self.train_data, self.val_data, self.meta = training_data(cap, cfg)

        self.setup_optimization()
        if resume_from is not None:
            self._load_state(resume_from)
        if self.dist.world > 1:
            self.ddp = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def setup_optimization(self) -> None:
        """AdamW over the trainable parameters, the LR schedule, autocast and the seed; needs `model`,
        `train_data` and `lr`."""
        cfg = self.cfg
        self.params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.param_names = [n for n, _ in self.params]
        try:    # the fused kernel: one pass over the weights instead of ~10 (CPU and CUDA, torch >= 2.4)
            self.opt = torch.optim.AdamW([p for _, p in self.params], lr=self.lr, weight_decay=cfg.weight_decay,
                                         fused=True)
        except (RuntimeError, TypeError):
            self.opt = torch.optim.AdamW([p for _, p in self.params], lr=self.lr, weight_decay=cfg.weight_decay)
        self.global_batch = cfg.batch_size * cfg.grad_accum * self.dist.world
        self.steps_per_epoch = math.ceil(len(self.train_data) / self.global_batch)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.warmup = effective_warmup(cfg.warmup_steps, cfg.warmup_ratio, self.total_steps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, self.warmup, self.total_steps))
        self.amp = autocast_dtype(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.ddp = self.model
        torch.manual_seed(cfg.seed + self.dist.rank)                 # dropout masks differ per rank

    def _resume_folder(self) -> Path | None:
        if self.dist.main:
            clean_leftovers(self.out)
        barrier(self.dist)
        states = state_folders(self.out)
        if states and not self.cfg.resume:
            raise ClipPrefixError(f"{self.out} already holds a training run; pass --resume to go on with it "
                                  "or choose another --out.")
        return states[-1][1] if states and self.cfg.resume else None

    # -- state
    def _load_state(self, folder: Path) -> None:
        meta = json.loads((folder / STATE_JSON).read_text())
        tensors = load_file(str(folder / STATE_TENSORS))
        if meta["param_names"] != self.param_names:
            raise ClipPrefixError(f"The state in {folder} trains other parameters than this configuration "
                                  "(e.g. --train-lm differs); resume with the settings it was started with.")
        if meta["world_size"] != self.dist.world or meta["global_batch"] != self.global_batch:
            self._log(f"note: resuming a run of {meta['world_size']} process(es), global batch {meta['global_batch']}, "
                      f"with {self.dist.world} and {self.global_batch}: it goes on, but not bit-for-bit.")
        load_optimizer(self.opt, self.param_names, tensors, meta["optimizer"])
        self.sched.load_state_dict(meta["scheduler"])
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        restore_rng(tensors, self.dist, self.device)
        self.epoch, self.step_in_epoch, self.global_step = meta["epoch"], meta["step_in_epoch"], meta["global_step"]
        self.history, self.best = meta["history"], meta["best"] if meta["best"] is not None else math.inf
        self.epoch_loss = list(meta.get("epoch_loss", [0.0, 0]))
        self._wandb_id = meta.get("wandb_id")
        self._log(f"resumed from {folder} (epoch {self.epoch + 1}, step {self.step_in_epoch} of "
                  f"{self.steps_per_epoch}, global step {self.global_step})")

    def _save_state(self, name: str) -> Path:
        """Write checkpoints/<name>/ (model + optimizer + scheduler + RNG + data position) atomically."""
        tensors, opt_meta = optimizer_tensors(self.opt, self.param_names)
        tensors.update(rng_states(self.dist, self.device))        # a collective: every rank takes part
        target = self.out / "checkpoints" / name
        if self.dist.main:
            meta = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                    "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                    "world_size": self.dist.world, "global_batch": self.global_batch,
                    "param_names": self.param_names, "optimizer": opt_meta, "scheduler": self.sched.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                    "epoch_loss": self.epoch_loss,
                    "history": self.history, "best": None if math.isinf(self.best) else self.best,
                    "wandb_id": self._wandb_id, "train_config": self.cfg.to_dict()}

            def extra(d: Path) -> None:
                save_file(tensors, str(d / STATE_TENSORS))
                (d / STATE_JSON).write_text(json.dumps(meta, indent=1))   # last: a folder with it is whole

            self._save_checkpoint(target, extra)
            atomic_write_text(self.out / "last.json", json.dumps({"path": f"checkpoints/{name}",
                                                                  "global_step": self.global_step}))
            point_symlink(self.out / "last", Path("checkpoints") / name)
            self._prune()
        barrier(self.dist)
        return target

    def _save_checkpoint(self, path: Path, extra=None) -> Path:
        """A self-describing checkpoint folder (+ `extra(tmp_dir)` files), written whole or not at all."""
        self.cap.config["training"] = dict(self.meta, epochs_done=self.epoch, global_step=self.global_step,
                                           best_val_loss=None if math.isinf(self.best) else self.best,
                                           train_config=self.cfg.to_dict())

        def fill(d: Path) -> None:
            self.cap.save_pretrained(d)
            if extra is not None:
                extra(d)

        return write_folder(path, fill)

    def _scalars(self, values: dict, step: int) -> None:
        if self.loggers is not None:
            self.loggers.scalars(values, step)

    def _prune(self) -> None:
        states = state_folders(self.out)
        for _, p in states[: max(0, len(states) - max(1, self.cfg.keep_checkpoints))]:
            shutil.rmtree(p, ignore_errors=True)

    # -- the loop
    def run(self) -> TrainResult:
        t_start = time.time()
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self._build()
        if self.dist.main:
            atomic_write_text(self.out / "train_config.json", json.dumps(cfg.to_dict(), indent=1))
        if self.dist.main:
            self.loggers = RunLoggers(self.out, tensorboard=cfg.tensorboard, wandb_project=cfg.wandb,
                                      config=cfg.to_dict(), step=self.global_step, wandb_id=self._wandb_id, log=self._log)
            self._wandb_id = self.loggers.wandb_id
        d = self.dist
        self._log(f"training {self.model.mapper_cfg.type} mapper{' + LM' if self.model.train_lm else ' (LM frozen)'}: "
                  f"{sum(p.numel() for _, p in self.params):,} trainable parameters; {len(self.train_data)} captions "
                  f"of {len(self.train_data.ids)} items, {self.steps_per_epoch} steps/epoch x {cfg.epochs} epochs "
                  f"(global batch {self.global_batch}, {d.world} process(es), {self.device}"
                  f"{', ' + str(self.amp).replace('torch.', '') + ' autocast' if self.amp else ''})")
        finished = True
        while self.epoch < cfg.epochs:
            order = epoch_order(self.train_data.lengths, self.epoch, cfg.seed, self.global_batch, cfg.group_by_length)
            self.model.train()
            t0, seen = time.time(), 0
            while self.step_in_epoch < self.steps_per_epoch:
                loss = self.step(order[self.step_in_epoch])
                self.step_in_epoch += 1
                self.global_step += 1
                seen += self.global_batch
                self.epoch_loss = [self.epoch_loss[0] + loss, self.epoch_loss[1] + 1]
                if self.global_step % cfg.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                    lr = self.sched.get_last_lr()[0]
                    rate = seen / max(time.time() - t0, 1e-9)
                    self._log(f"epoch {self.epoch + 1}/{cfg.epochs} step {self.step_in_epoch}/{self.steps_per_epoch} "
                              f"loss {loss:.4f} lr {lr:.2e} {rate:.0f} samples/s")
                    self._scalars({"train/loss": loss, "train/lr": lr, "train/samples_per_s": rate}, self.global_step)
                if self.step_in_epoch < self.steps_per_epoch and cfg.save_every_steps \
                        and self.global_step % cfg.save_every_steps == 0:
                    self._save_state(f"step-{self.global_step:07d}")
                if cfg.stop_after_steps is not None and self.global_step >= cfg.stop_after_steps \
                        and self.step_in_epoch < self.steps_per_epoch:
                    self._save_state(f"step-{self.global_step:07d}")
                    finished = False
                    break
            if not finished:
                break
            self._end_epoch(seen, time.time() - t0)
            if cfg.stop_after_steps is not None and self.global_step >= cfg.stop_after_steps and self.epoch < cfg.epochs:
                finished = False
                break
        result = self._result(finished, time.time() - t_start)
        self._close()
        return result

    def step(self, batch: torch.Tensor) -> float:
        """One optimizer step over a global batch of pair indices (this rank's micro-batches); the mean loss."""
        cfg, d = self.cfg, self.dist
        total = 0.0
        for a in range(cfg.grad_accum):
            c = a * d.world + d.rank            # micro-batch a of rank r = chunk a*W + r of the global batch
            feats, ids, mask = self.train_data.batch(batch[c * cfg.batch_size:(c + 1) * cfg.batch_size], self.device)
            sync = a == cfg.grad_accum - 1 or d.world == 1
            ctx = self.ddp.no_sync() if not sync else contextlib.nullcontext()
            with ctx, torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                loss = self.ddp(feats, ids, mask) / cfg.grad_accum
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += float(loss.detach())
        if self.scaler is not None:
            self.scaler.unscale_(self.opt)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for _, p in self.params], cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return all_sum([total], d, self.device)[0] / d.world

    @torch.no_grad()
    def validate(self) -> float | None:
        """Token-weighted mean cross-entropy over every validation caption (sharded over ranks)."""
        if self.val_data is None:
            return None
        self.model.eval()
        d, bs = self.dist, self.cfg.batch_size
        total, count = 0.0, 0
        order = torch.arange(len(self.val_data))[d.rank::d.world]
        for i in range(0, len(order), bs):
            feats, ids, mask = self.val_data.batch(order[i:i + bs], self.device)
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                total += float(self.model(feats, ids, mask, reduction="sum"))
            count += int(mask.sum())
        total, count = all_sum([total, float(count)], d, self.device)
        self.model.train()
        return total / max(count, 1)

    def sample(self) -> list[dict]:
        """Greedy captions of the first `sample_items` validation (else training) items."""
        data = self.val_data or self.train_data
        n = min(self.cfg.sample_items, len(data.ids))
        if n == 0 or not self.dist.main:
            return []
        self.model.eval()
        caps = self.cap.caption_features(data.features[:n].float().to(self.device))
        self.model.train()
        return [{"id": data.ids[k], "prediction": c.text, "reference": data.references[k][0]} for k, c in enumerate(caps)]

    def _end_epoch(self, seen: int, seconds: float) -> None:
        val = self.validate()
        samples = self.sample()
        train_loss = self.epoch_loss[0] / max(self.epoch_loss[1], 1)
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_loss = [0.0, 0]
        rec = {"epoch": self.epoch, "global_step": self.global_step, "train_loss": train_loss, "val_loss": val,
               "lr": self.sched.get_last_lr()[0], "samples_per_s": seen / max(seconds, 1e-9),
               "seconds": seconds, "samples": samples}
        self.history.append(rec)
        self._log(f"epoch {self.epoch}/{self.cfg.epochs}: train loss {train_loss:.4f}"
                  + (f", val loss {val:.4f}" if val is not None else "") + f" ({seconds:.1f} s)")
        for s in samples:
            self._log(f"  {s['id']}: {s['prediction']!r}  (ref: {s['reference']!r})")
        self._scalars({"epoch/train_loss": train_loss, **({"epoch/val_loss": val} if val is not None else {})},
                      self.global_step)
        if self.loggers is not None:
            self.loggers.samples(samples, self.global_step)
        score = val if val is not None else train_loss
        improved = score < self.best
        if improved:
            self.best = score
        if self.dist.main:
            atomic_write_text(self.out / "history.json", json.dumps(self.history, indent=1))
            if improved:
                self._save_checkpoint(self.out / "best")
        self._save_state(f"epoch-{self.epoch:03d}")

    def _result(self, finished: bool, seconds: float) -> TrainResult:
        states = state_folders(self.out)
        last = states[-1][1] if states else self.out
        best = self.out / "best" if (self.out / "best").is_dir() else last
        return TrainResult(self.out, best, last, list(self.history), self.global_step, seconds, finished)

    def _close(self) -> None:
        if self.loggers is not None:
            self.loggers.close()
        shutdown(self.dist)


def train(cfg: TrainConfig | None = None, **kwargs) -> TrainResult:
    """Train as `cfg` (or TrainConfig(**kwargs)) says; returns the best/last checkpoints and the history."""
    cfg = cfg or TrainConfig(**kwargs)
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise ClipPrefixError("epochs, batch_size and grad_accum must be at least 1.")
    threads = cfg.threads if cfg.threads is not None else presets.recipe(cfg.init)["threads"]
    with torch_threads(threads):
        return Trainer(cfg).run()
