"""Training a captioner on CLIP feature caches: the mapper alone (frozen LM) or the mapper and the LM.

    from clipprefix.train import TrainConfig, train
    result = train(TrainConfig(cache="data/processed/features/coco_train_tiny_uniform-16", init="tiny",
                               out="runs/tiny", epochs=8))                  # ~1 min on a laptop CPU
    Captioner.from_pretrained(result.best_checkpoint).caption_images(["photo.jpg"])

    clipprefix train --cache DIR [--val-cache DIR] --config tiny --out runs/x --epochs 8
    torchrun --nproc-per-node 8 -m clipprefix.cli train ...                # DDP, the same command

`init` names a config (`presets.CONFIGS`: tiny, tiny-video, clipcap-mlp, clipcap-transformer,
msrvtt-video) for a fresh model, or a checkpoint (folder, preset, Hub id) to go on training. Fields
left None take the recipe of the init (`RECIPES`: the tiny models learn at 1e-3 and fine-tune their
randomly initialised LM; the GPT-2 ones use ClipCap's 2e-5).

What one step sees: every caption of every item is one sample (ClipCap's choice; an epoch is all
(item, caption) pairs once, shuffled by (seed, epoch)); captions end with the LM's end-of-text token,
pad to the longest in the micro-batch and carry label -100 on padding (`model.encode_captions`);
batches are drawn from windows of similar-length captions (less padding). AdamW, linear warm-up
then linear decay (warm-up clipped to the run), gradient clipping and accumulation, bf16/fp16
autocast on GPUs only.

Run folder (`out`):
    train_config.json        the TrainConfig
    checkpoints/epoch-003/   a checkpoint folder (Captioner.from_pretrained) + trainer_state.json and
                             trainer_state.safetensors (optimizer, RNG: no pickle); also step-000450/
                             mid-epoch when save_every_steps is set; the newest `keep_checkpoints` kept
    best/                    the checkpoint with the lowest validation loss
    last -> checkpoints/...  the newest state (also named in last.json); `resume=True` goes on from it
    history.json             one record per epoch (losses, lr, samples/s, generated samples)
    tb/                      TensorBoard events; W&B only with `wandb="project"`

Every folder is written to a temporary name and renamed, so a kill at any moment leaves whole
checkpoints only, and a resumed run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..base.errors import ClipPrefixError
from ..base.paths import atomic_write_text

STATE_JSON, STATE_TENSORS = "trainer_state.json", "trainer_state.safetensors"

# Defaults per init for the fields left None (lr, train_lm).
# Defaults per init for the fields left None. The tiny LM starts random, so it must train (a frozen random
# LM learns nothing: val loss stays near log(vocab)); one CPU thread, because a 2-layer model gains
# little from two and collapses (30-50x slower) when other processes compete for the cores.
RECIPES = {"tiny": {"lr": 1e-3, "train_lm": True, "threads": 1},
           "tiny-video": {"lr": 1e-3, "train_lm": True, "threads": 1}}
DEFAULT_RECIPE = {"lr": 2e-5, "train_lm": None, "threads": None}   # None: the config's / torch's choice


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
        """Loss curves: training loss (mean per epoch) and validation loss, as a matplotlib Figure."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 3.5), layout="constrained")
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
        import html

        rows = []
        for r in self.history:
            caps = "<br>".join(f"<code>{html.escape(str(s['id']))}</code> {html.escape(s['prediction'])}"
                               for s in r["samples"])
            val = f"{r['val_loss']:.4f}" if r["val_loss"] is not None else "-"
            rows.append(f"<tr><td>{r['epoch']}</td><td>{r['train_loss']:.4f}</td><td>{val}</td>"
                        f"<td>{r['samples_per_s']:.0f}</td><td style='text-align:left'>{caps}</td></tr>")
        return ("<table><tr><th>epoch</th><th>train loss</th><th>val loss</th><th>samples/s</th>"
                f"<th>sample captions</th></tr>{''.join(rows)}</table><small>best: {html.escape(str(self.best_checkpoint))}"
                "</small>")


# ---------------------------------------------------------------------- data
class CaptionPairs:
    """All (item, caption) pairs of some items: features (N, T, D) fp16 in memory, captions tokenised
    once (padded ids + lengths; a batch is cut to its own longest caption)."""

    def __init__(self, ids: list[str], features: torch.Tensor, references: list[list[str]], item: torch.Tensor,
                 tokens: torch.Tensor, lengths: torch.Tensor):
        self.ids, self.features, self.references = list(ids), features, references
        self.item, self.tokens, self.lengths = item, tokens, lengths    # per pair: item index, ids (P, L), lengths

    @classmethod
    def from_cache(cls, cache, ids: list[str], tokenizer, *, max_tokens: int | None = None,
                   num_frames: int | None = None) -> "CaptionPairs":
        from ..core.model import encode_captions

        if not ids:
            raise ClipPrefixError(f"Feature cache {cache.root} has no items to train or validate on.")
        references = [cache.captions(i) for i in ids]
        item = [k for k, refs in enumerate(references) for _ in refs]
        caps = [c for refs in references for c in refs]
        if not caps:
            raise ClipPrefixError(f"The items of {cache.root} carry no captions to train on.")
        chunks = [encode_captions(tokenizer, caps[i:i + 8192], max_length=max_tokens) for i in range(0, len(caps), 8192)]
        width = max(c[0].shape[1] for c in chunks)
        tokens = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1])) for t, _ in chunks])
        lengths = torch.cat([m.sum(1) for _, m in chunks])
        feats = stack_frames([cache.features(i) for i in ids], num_frames)
        return cls(ids, feats, references, torch.tensor(item), tokens, lengths)

    def __len__(self) -> int:
        return len(self.item)

    def batch(self, idx: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features (B, T, D) float32, token ids (B, L) and mask (B, L), L = longest caption in the batch."""
        n = int(self.lengths[idx].max())
        mask = (torch.arange(n)[None] < self.lengths[idx, None]).long()
        return (self.features[self.item[idx]].float().to(device), self.tokens[idx, :n].to(device), mask.to(device))


def stack_frames(feats: list[torch.Tensor], n: int | None) -> torch.Tensor:
    """(T_i, D) tensors -> (N, T, D); items are resampled uniformly to `n` frames (default: the
    most common T) when their frame counts differ or `n` is given."""
    counts = [f.shape[0] for f in feats]
    if n is None:
        if len(set(counts)) == 1:
            return torch.stack(feats)
        n = max(set(counts), key=counts.count)
    return torch.stack([f[torch.linspace(0, f.shape[0] - 1, n).round().long()] for f in feats])


def epoch_order(lengths: torch.Tensor, epoch: int, seed: int, global_batch: int, group_by_length: bool) -> torch.Tensor:
    """Pair indices for one epoch as (steps, global_batch): a permutation fixed by (seed, epoch), padded
    by wrapping around to whole batches; with `group_by_length`, windows of 64 batches are sorted by
    caption length before cutting (batches of similar lengths, in shuffled order)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    n = len(lengths)
    perm = torch.randperm(n, generator=g)
    steps = math.ceil(n / global_batch)
    perm = torch.cat([perm, perm[: steps * global_batch - n]]) if steps * global_batch > n else perm
    while len(perm) < steps * global_batch:   # fewer pairs than one batch
        perm = torch.cat([perm, perm])[: steps * global_batch]
    if group_by_length:
        window = 64 * global_batch
        parts = []
        for i in range(0, len(perm), window):
            w = perm[i:i + window]
            parts.append(w[torch.sort(lengths[w], stable=True).indices])
        perm = torch.cat(parts)
        perm = perm.view(steps, global_batch)[torch.randperm(steps, generator=g)]
    return perm.view(steps, global_batch)


def _split_ids(cache, split: str | None, exclude: str | None = None) -> list[str]:
    from ..data.datasets import split_name

    want = split_name(split) if split else None
    drop = split_name(exclude) if exclude else None
    return [i for i in cache.ids
            if (want in (None, "all") or cache.split_of(i) == want) and (drop is None or cache.split_of(i) != drop)]


# ---------------------------------------------------------------------- distributed
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_arg: str) -> tuple[_Dist, torch.device]:
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(device_arg)
        if device.type == "cuda" and device.index is None and world > 1:
            device = torch.device(f"cuda:{local}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world == 1:
        return _Dist(), device
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), local, owns), device


def _all_sum(values: list[float], d: _Dist, device) -> list[float]:
    if d.world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _barrier(d: _Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist
        dist.barrier()


# ---------------------------------------------------------------------- schedule, precision
def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then linear decay towards 0 at `total` (step is 0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def effective_warmup(steps: int | None, ratio: float, total: int) -> int:
    """Warm-up steps: `steps`, else `ratio` of the run; never more than the run itself."""
    warm = steps if steps is not None else round(ratio * total)
    return max(0, min(int(warm), total))


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ClipPrefixError(f"precision must be auto, fp32, bf16 or fp16, not '{precision}'.")
    if device.type != "cuda" or precision == "fp32":
        return None                       # autocast on GPUs only; a CPU trains in fp32
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


# ---------------------------------------------------------------------- state (safetensors + JSON, never pickle)
def _optimizer_tensors(opt: torch.optim.Optimizer, names: list[str]) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            tensors[f"optim/{names[idx]}/{key}"] = value.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}


def _load_optimizer(opt: torch.optim.Optimizer, names: list[str], tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    index = {n: i for i, n in enumerate(names)}
    for key, value in tensors.items():
        if not key.startswith("optim/"):
            continue
        name, slot = key[len("optim/"):].rsplit("/", 1)
        if name not in index:
            raise ClipPrefixError(f"The saved optimizer state has a parameter '{name}' this model does not train.")
        state.setdefault(index[name], {})[slot] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _rng_states(d: _Dist, device: torch.device) -> dict[str, torch.Tensor]:
    """This process's RNG states, gathered from every rank (each rank draws its own dropout masks)."""
    mine = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(device)
    if d.world == 1:
        return {f"rng/{k}/0": v for k, v in mine.items()}
    import torch.distributed as dist

    gathered: list = [None] * d.world
    dist.all_gather_object(gathered, {k: v.tolist() for k, v in mine.items()})
    return {f"rng/{k}/{r}": torch.tensor(v, dtype=torch.uint8) for r, g in enumerate(gathered) for k, v in g.items()}


def _restore_rng(tensors: dict, d: _Dist, device: torch.device) -> None:
    cpu = tensors.get(f"rng/cpu/{d.rank}")
    if cpu is not None:
        torch.set_rng_state(cpu)
    cuda = tensors.get(f"rng/cuda/{d.rank}")
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)


def _state_folders(out: Path) -> list[tuple[int, Path]]:
    """Saved states in `out/checkpoints`, oldest first, as (global_step, folder)."""
    found = []
    for p in (out / "checkpoints").glob("*"):
        f = p / STATE_JSON
        if p.is_dir() and not p.name.startswith(".") and f.is_file():
            found.append((json.loads(f.read_text())["global_step"], p))
    return sorted(found)


# ---------------------------------------------------------------------- the trainer
class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.dist, self.device = _setup_distributed(cfg.device)
        self.history: list[dict] = []
        self.best = math.inf
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.epoch_loss = [0.0, 0]          # sum and count of step losses so far in this epoch
        self._tb = self._wandb = None

    # -- setup
    def _log(self, msg: str) -> None:
        if self.cfg.verbose and self.dist.main:
            print(msg, flush=True)

    def _build(self) -> None:
        from ..core.captioner import Captioner
        from ..data.extract import FeatureCache
        from ..core.presets import CONFIGS, new_captioner

        cfg = self.cfg
        resume_from = self._resume_folder()
        recipe = RECIPES.get(cfg.init, DEFAULT_RECIPE)
        self.lr = cfg.lr if cfg.lr is not None else recipe["lr"]
        train_lm = cfg.train_lm if cfg.train_lm is not None else recipe["train_lm"]
        if resume_from is not None:
            cap = Captioner.from_pretrained(resume_from)
        elif cfg.init in CONFIGS:
            cap = new_captioner(cfg.init, seed=cfg.seed, **cfg.mapper)
        else:
            cap = Captioner.from_pretrained(cfg.init)
        if train_lm is not None:
            cap.config["lm"]["trainable"] = bool(train_lm)
            cap.model.set_train_lm(bool(train_lm))
        cap.to(self.device, torch.float32)
        self.cap = cap
        self.model = cap.model

        train_cache = FeatureCache.open(cfg.cache)
        self.cap.check_cache(train_cache)
        val_cache, val_ids = None, []
        if cfg.val_cache:
            val_cache = FeatureCache.open(cfg.val_cache)
            self.cap.check_cache(val_cache)
            val_ids = list(val_cache.ids)
        elif train_cache.meta.get("split") == "all":
            val_cache, val_ids = train_cache, _split_ids(train_cache, cfg.val_split)
        exclude = cfg.val_split if val_cache is train_cache else None
        train_split = cfg.train_split or ("train" if train_cache.meta.get("split") == "all" else None)
        train_ids = _split_ids(train_cache, train_split, exclude=exclude)
        tok = cap.tokenizer
        n_frames = cfg.num_frames
        if n_frames is None and self.model.mapper_cfg.type == "video":
            n_frames = min(self.model.mapper_cfg.max_frames, max(train_cache.features(train_ids[0]).shape[0], 1)) \
                if train_ids else None
        self.train_data = CaptionPairs.from_cache(train_cache, train_ids, tok, max_tokens=cfg.max_tokens, num_frames=n_frames)
        self.val_data = CaptionPairs.from_cache(val_cache, val_ids, tok, max_tokens=cfg.max_tokens,
                                     num_frames=self.train_data.features.shape[1]) if val_ids else None
        self.meta = {"cache": str(cfg.cache), "dataset": train_cache.meta.get("dataset"),
                     "split": train_cache.meta.get("split"), "encoder": train_cache.meta.get("encoder"),
                     "sampling": train_cache.meta.get("sampling"), "n_frames": int(self.train_data.features.shape[1])}

        self.setup_optimization()
        if resume_from is not None:
            self._load_state(resume_from)
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            self.ddp = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def setup_optimization(self) -> None:
        """AdamW over the trainable parameters, the LR schedule, autocast and the seed; needs `model`,
        `train_data` and `lr` (benchmarks/bench_train.py sets those itself and then times `step`)."""
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
        self.amp = _autocast_dtype(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.ddp = self.model
        torch.manual_seed(cfg.seed + self.dist.rank)                 # dropout masks differ per rank

    def _resume_folder(self) -> Path | None:
        if self.dist.main:      # what a kill during a save left: half-written folders, never renamed into place
            for tmp in (self.out / "checkpoints").glob(".*"):
                shutil.rmtree(tmp, ignore_errors=True)
            for tmp in self.out.glob(".best.*"):     # ... or the old best/, moved aside just before the new one came
                if ".old-" in tmp.name and not (self.out / "best").exists():
                    os.rename(tmp, self.out / "best")
                else:
                    shutil.rmtree(tmp, ignore_errors=True)
        _barrier(self.dist)
        states = _state_folders(self.out)
        if states and not self.cfg.resume:
            raise ClipPrefixError(f"{self.out} already holds a training run; pass --resume to go on with it "
                                  "or choose another --out.")
        return states[-1][1] if states and self.cfg.resume else None

    # -- state
    def _load_state(self, folder: Path) -> None:
        from safetensors.torch import load_file

        meta = json.loads((folder / STATE_JSON).read_text())
        tensors = load_file(str(folder / STATE_TENSORS))
        if meta["param_names"] != self.param_names:
            raise ClipPrefixError(f"The state in {folder} trains other parameters than this configuration "
                                  "(e.g. --train-lm differs); resume with the settings it was started with.")
        if meta["world_size"] != self.dist.world or meta["global_batch"] != self.global_batch:
            self._log(f"note: resuming a run of {meta['world_size']} process(es), global batch {meta['global_batch']}, "
                      f"with {self.dist.world} and {self.global_batch}: it goes on, but not bit-for-bit.")
        _load_optimizer(self.opt, self.param_names, tensors, meta["optimizer"])
        self.sched.load_state_dict(meta["scheduler"])
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        _restore_rng(tensors, self.dist, self.device)
        self.epoch, self.step_in_epoch, self.global_step = meta["epoch"], meta["step_in_epoch"], meta["global_step"]
        self.history, self.best = meta["history"], meta["best"] if meta["best"] is not None else math.inf
        self.epoch_loss = list(meta.get("epoch_loss", [0.0, 0]))
        self._wandb_id = meta.get("wandb_id")
        self._log(f"resumed from {folder} (epoch {self.epoch + 1}, step {self.step_in_epoch} of "
                  f"{self.steps_per_epoch}, global step {self.global_step})")

    def _save_state(self, name: str) -> Path:
        """Write checkpoints/<name>/ (model + optimizer + scheduler + RNG + data position) atomically."""
        from safetensors.torch import save_file

        tensors, opt_meta = _optimizer_tensors(self.opt, self.param_names)
        tensors.update(_rng_states(self.dist, self.device))        # a collective: every rank takes part
        target = self.out / "checkpoints" / name
        if self.dist.main:
            meta = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                    "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                    "world_size": self.dist.world, "global_batch": self.global_batch,
                    "param_names": self.param_names, "optimizer": opt_meta, "scheduler": self.sched.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                    "epoch_loss": self.epoch_loss,
                    "history": self.history, "best": None if math.isinf(self.best) else self.best,
                    "wandb_id": getattr(self, "_wandb_id", None), "train_config": self.cfg.to_dict()}

            def extra(d: Path) -> None:
                save_file(tensors, str(d / STATE_TENSORS))
                (d / STATE_JSON).write_text(json.dumps(meta, indent=1))   # last: a folder with it is whole

            self._save_checkpoint(target, extra)
            atomic_write_text(self.out / "last.json", json.dumps({"path": f"checkpoints/{name}",
                                                                  "global_step": self.global_step}))
            _point_symlink(self.out / "last", Path("checkpoints") / name)
            self._prune()
        _barrier(self.dist)
        return target

    def _save_checkpoint(self, path: Path, extra=None) -> Path:
        """A self-describing checkpoint folder (+ `extra(tmp_dir)` files), written whole or not at all."""
        from ..core.checkpoint import write_folder

        self.cap.config["training"] = dict(self.meta, epochs_done=self.epoch, global_step=self.global_step,
                                           best_val_loss=None if math.isinf(self.best) else self.best,
                                           train_config=self.cfg.to_dict())

        def fill(d: Path) -> None:
            self.cap.save_pretrained(d)
            if extra is not None:
                extra(d)

        return write_folder(path, fill)

    def _prune(self) -> None:
        states = _state_folders(self.out)
        for _, p in states[: max(0, len(states) - max(1, self.cfg.keep_checkpoints))]:
            shutil.rmtree(p, ignore_errors=True)

    # -- logging
    def _open_loggers(self) -> None:
        if not self.dist.main:
            return
        if self.cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.out / "tb"), purge_step=self.global_step or None)
            except ImportError:
                self._log("note: TensorBoard logging is off (pip install tensorboard to turn it on)")
        if self.cfg.wandb:
            try:
                import wandb
            except ImportError as e:
                raise ClipPrefixError("W&B logging was asked for but wandb is not installed; pip install wandb.") from e
            self._wandb_id = getattr(self, "_wandb_id", None) or wandb.util.generate_id()
            self._wandb = wandb.init(project=self.cfg.wandb, config=self.cfg.to_dict(), dir=str(self.out),
                                     id=self._wandb_id, resume="allow")

    def _scalars(self, values: dict, step: int) -> None:
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    # -- the loop
    def run(self) -> TrainResult:
        t_start = time.time()
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self._build()
        if self.dist.main:
            atomic_write_text(self.out / "train_config.json", json.dumps(cfg.to_dict(), indent=1))
        self._open_loggers()
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
        return _all_sum([total], d, self.device)[0] / d.world

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
        total, count = _all_sum([total, float(count)], d, self.device)
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
        if self._tb is not None and samples:
            self._tb.add_text("samples", "\n\n".join(f"`{s['id']}`: {s['prediction']}" for s in samples), self.global_step)
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
        states = _state_folders(self.out)
        last = states[-1][1] if states else self.out
        best = self.out / "best" if (self.out / "best").is_dir() else last
        return TrainResult(self.out, best, last, list(self.history), self.global_step, seconds, finished)

    def _close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self.dist.owns_group:
            import torch.distributed as dist
            dist.destroy_process_group()


def _point_symlink(link: Path, target: Path) -> None:
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


def train(cfg: TrainConfig | None = None, **kwargs) -> TrainResult:
    """Train as `cfg` (or TrainConfig(**kwargs)) says; returns the best/last checkpoints and the history."""
    cfg = cfg or TrainConfig(**kwargs)
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise ClipPrefixError("epochs, batch_size and grad_accum must be at least 1.")
    threads = cfg.threads if cfg.threads is not None else RECIPES.get(cfg.init, DEFAULT_RECIPE)["threads"]
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return Trainer(cfg).run()
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------- CLI
def add_train_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a captioner on CLIP feature caches",
                              description="Train a mapper (and optionally the LM) on a feature cache; "
                                          "under torchrun the same command trains with DDP.")
    p.add_argument("--cache", required=True, help="training feature cache (clipprefix extract)")
    p.add_argument("--val-cache", help="validation feature cache (default: the cache's val items, if any)")
    p.add_argument("--config", dest="init", default="tiny",
                   help="config for a fresh model (tiny, tiny-video, clipcap-mlp, clipcap-transformer, "
                        "msrvtt-video) or a checkpoint to go on from")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=40, help="per process and micro-batch")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, help="peak learning rate (default: tiny 1e-3, GPT-2 configs 2e-5)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, help="default: 5%% of the run")
    p.add_argument("--grad-clip", type=float, default=1.0, help="0 turns clipping off")
    p.add_argument("--train-lm", default=None, action=argparse.BooleanOptionalAction,
                   help="fine-tune the LM too (default: tiny yes, clipcap-mlp yes, others no)")
    p.add_argument("--prefix-length", type=int, help="mapper prefix length K (fresh models)")
    p.add_argument("--num-layers", type=int, help="mapper layers (fresh transformer/video mappers)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, help="truncate captions to N tokens")
    p.add_argument("--num-frames", type=int, help="resample video items to N frames")
    p.add_argument("--save-every-steps", type=int, help="also save a resumable state every N steps")
    p.add_argument("--keep-checkpoints", type=int, default=3)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    p.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project")
    p.add_argument("--resume", action="store_true", help="go on from the newest state in --out")
    p.add_argument("--stop-after-steps", type=int, help="stop (saving a state) after N optimizer steps")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (default: 1 for the tiny configs, else torch's)")
    p.add_argument("--quiet", dest="verbose", action="store_false", help="no training log")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    known = {f.name for f in fields(TrainConfig)}
    kw = {k: v for k, v in vars(args).items() if k in known}
    kw["mapper"] = {k: v for k, v in (("prefix_length", args.prefix_length), ("num_layers", args.num_layers)) if v}
    kw["grad_clip"] = args.grad_clip or None
    res = train(TrainConfig(**kw))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best checkpoint: {res.best_checkpoint}" + ("" if res.finished else f" (stopped at step {res.global_step})"))
    return 0

