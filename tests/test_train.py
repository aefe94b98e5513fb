"""Training: every caption is a sample ending in EOS, the epoch order and LR schedule, the run folder,
exact resume after an injected stop and after kill -9, and 2-process DDP (gloo) == one process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clipprefix.data import cache as C
from clipprefix.data import extract as F
from clipprefix.core.captioner import Captioner
from clipprefix.base.errors import ClipPrefixError
from clipprefix.core.lm_input import IGNORE_INDEX
from clipprefix.core.model import encode_captions
from clipprefix.training.config import TrainConfig
from clipprefix.training.pairs import CaptionPairs, epoch_order
from clipprefix.training.schedule import autocast_dtype, effective_warmup, lr_factor
from clipprefix.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def coco_cache(tmp_path_factory, synth_root, tiny_encoder):
    """Synthetic COCO, split 'all': 20 train(+restval) images, 4 val, 4 test; 5 captions each."""
    out = tmp_path_factory.mktemp("train") / "coco_all"
    F.extract("coco", synth_root / "coco", out, split="all", encoder=tiny_encoder, progress=False)
    return out


def config(cache, out, **kw) -> TrainConfig:
    base = dict(cache=str(cache), out=str(out), init="tiny", epochs=2, batch_size=8, log_every=1000, sample_items=2,
                tensorboard=False, verbose=False)
    return TrainConfig(**{**base, **kw})


def weights(folder) -> dict[str, torch.Tensor]:
    m = Captioner.from_pretrained(folder).model
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.fixture(scope="module")
def reference_run(coco_cache, tmp_path_factory):
    """The uninterrupted run the resumed ones must reproduce (LM fine-tuned: dropout draws from the RNG)."""
    res = train(config(coco_cache, tmp_path_factory.mktemp("ref") / "run"))
    return res, weights(res.last_checkpoint)


def test_every_caption_is_a_sample_ending_in_eos(coco_cache):
    cap = Captioner.from_pretrained("tiny")
    tok = cap.tokenizer
    cache = C.FeatureCache.open(coco_cache)
    ids = [i for i in cache.ids if cache.split_of(i) == "train"]
    data = CaptionPairs.from_cache(cache, ids, tok)
    flat = [c for i in ids for c in cache.captions(i)]
    assert len(data) == len(flat) == 5 * len(ids)
    for k in (0, 1, 4, 5, len(flat) - 1):
        want, _ = encode_captions(tok, [flat[k]])
        n = int(data.lengths[k])
        assert data.tokens[k, :n].tolist() == want[0].tolist() and want[0, -1] == tok.eos_token_id
        assert torch.equal(data.features[data.item[k]], cache.features(ids[data.item[k]]))
    feats, tokens, mask = data.batch(torch.tensor([0, 3, 7]), "cpu")
    assert tokens.shape[1] == int(data.lengths[[0, 3, 7]].max())      # dynamic padding: the batch's longest
    x = cap.model.lm_input(feats, tokens, mask)
    labels = x.labels[:, cap.model.mapper_cfg.prefix_length:]
    assert (labels[mask == 0] == IGNORE_INDEX).all() and (labels[mask == 1] != IGNORE_INDEX).all()
    assert (labels[mask == 1] < len(tok)).all()


def test_epoch_order_is_a_seeded_permutation_in_whole_batches():
    lengths = torch.randint(3, 30, (103,), generator=torch.Generator().manual_seed(1))
    for group in (False, True):
        o = epoch_order(lengths, epoch=0, seed=0, global_batch=8, group_by_length=group)
        assert o.shape == (13, 8) and set(o.flatten().tolist()) == set(range(103))   # 1 pair repeated to fill
        assert torch.equal(o, epoch_order(lengths, 0, 0, 8, group))
        assert not torch.equal(o, epoch_order(lengths, 1, 0, 8, group))
    grouped = epoch_order(lengths, 0, 0, 8, True)
    assert all(torch.equal(lengths[r], lengths[r].sort().values) for r in grouped)  # similar lengths per batch
    plain = epoch_order(lengths, 0, 0, 8, False)
    assert not all(torch.equal(lengths[r], lengths[r].sort().values) for r in plain)
    assert epoch_order(lengths[:5], 0, 0, 8, False).shape == (1, 8)              # fewer pairs than a batch


def test_warmup_is_clipped_to_the_run_and_decays_linearly():
    assert effective_warmup(None, 0.05, 1000) == 50
    assert effective_warmup(10**6, 0.05, 40) == 40
    f = [lr_factor(s, 40, 40) for s in range(40)]
    assert f == sorted(f) and f[-1] == 1.0 and max(f) <= 1.0
    g = [lr_factor(s, 10, 100) for s in range(100)]
    assert g[9] == 1.0 and g[:10] == sorted(g[:10]) and g[10:] == sorted(g[10:], reverse=True)
    assert g[10] == pytest.approx(1.0) and g[-1] == pytest.approx(1 / 90)


def test_autocast_only_on_gpus():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert all(autocast_dtype(p, cpu) is None for p in ("auto", "fp32", "bf16", "fp16"))
    assert autocast_dtype("bf16", gpu) == torch.bfloat16 and autocast_dtype("fp16", gpu) == torch.float16
    assert autocast_dtype("fp32", gpu) is None
    with pytest.raises(ClipPrefixError):
        autocast_dtype("fp8", cpu)


def test_run_folder_history_checkpoints_and_logs(coco_cache, tmp_path):
    out = tmp_path / "run"
    res = train(config(coco_cache, out, epochs=3, keep_checkpoints=2, tensorboard=True))
    assert res.finished and res.global_step == 3 * 13          # 20 items x 5 captions / batch 8
    h = res.history
    assert [r["epoch"] for r in h] == [1, 2, 3] and all(r["val_loss"] is not None for r in h)
    assert h[-1]["train_loss"] < h[0]["train_loss"] and h[-1]["val_loss"] < h[0]["val_loss"]
    assert all(len(r["samples"]) == 2 and isinstance(r["samples"][0]["prediction"], str) for r in h)
    assert json.loads((out / "history.json").read_text()) == h
    assert json.loads((out / "train_config.json").read_text())["epochs"] == 3
    states = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert states == ["epoch-002", "epoch-003"]                 # keep_checkpoints=2
    assert json.loads((out / "last.json").read_text()) == {"path": "checkpoints/epoch-003", "global_step": 39}
    assert (out / "last").resolve() == (out / "checkpoints" / "epoch-003").resolve() == res.last_checkpoint.resolve()
    best_epoch = min(h, key=lambda r: r["val_loss"])["epoch"]
    cap = Captioner.from_pretrained(res.best_checkpoint)
    assert res.best_checkpoint == out / "best" and cap.config["training"]["epochs_done"] == best_epoch
    assert cap.config["training"]["dataset"] == "coco" and cap.config["lm"]["trainable"] is True
    assert cap.caption_features(torch.zeros(1, 1, 128))[0].text is not None
    assert list((out / "tb").glob("events.out.tfevents.*"))
    with pytest.raises(ClipPrefixError, match="--resume"):
        train(config(coco_cache, out))


def test_the_samples_of_each_epoch_are_that_epochs_captions(coco_cache, tmp_path):
    """The fused AdamW updates weights in place without bumping their version counters: the captions the
    trainer writes after an epoch (notebook 02's table) must still be those of that epoch's weights."""
    res = train(config(coco_cache, tmp_path / "run", epochs=3, keep_checkpoints=3, lr=3e-3, sample_items=4))
    cache = C.FeatureCache.open(coco_cache)
    seen = []
    for r in res.history:
        cap = Captioner.from_pretrained(tmp_path / "run" / "checkpoints" / f"epoch-{r['epoch']:03d}", fast=False)
        ids = [s["id"] for s in r["samples"]]
        want = [c.text for c in cap.caption_features([cache.features(i) for i in ids])]
        assert [s["prediction"] for s in r["samples"]] == want, r["epoch"]
        seen.append(want)
    assert seen[0] != seen[-1]          # the captions change as it learns (so a stale copy would be caught)


def test_mapper_only_training_leaves_the_lm_alone(coco_cache, tmp_path):
    from clipprefix.core.captioner import new_captioner

    res = train(config(coco_cache, tmp_path / "run", epochs=1, train_lm=False))
    before, after = new_captioner("tiny", seed=0).model, Captioner.from_pretrained(res.last_checkpoint).model
    assert all(torch.equal(v, after.lm.state_dict()[k]) for k, v in before.lm.state_dict().items())
    assert not all(torch.equal(v, after.mapper.state_dict()[k]) for k, v in before.mapper.state_dict().items())
    meta = json.loads((res.last_checkpoint / "trainer_state.json").read_text())
    assert meta["param_names"] and all(n.startswith("mapper.") for n in meta["param_names"])


@pytest.mark.parametrize("stop", [5, 13])      # mid-epoch, and exactly at the end of epoch 1
def test_resume_after_a_stop_ends_with_the_same_weights(coco_cache, reference_run, tmp_path, stop):
    ref, ref_w = reference_run
    out = tmp_path / "run"
    part = train(config(coco_cache, out, stop_after_steps=stop))
    assert not part.finished and part.global_step == stop
    done = train(config(coco_cache, out, resume=True))
    assert done.finished and done.global_step == ref.global_step == 26
    w = weights(done.last_checkpoint)
    assert w.keys() == ref_w.keys() and all(torch.equal(w[k], ref_w[k]) for k in w)
    assert [(r["train_loss"], r["val_loss"]) for r in done.history] == [(r["train_loss"], r["val_loss"]) for r in ref.history]


def test_kill_9_and_resume_ends_with_the_same_weights(coco_cache, reference_run, tmp_path):
    ref, ref_w = reference_run
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "clipprefix.cli", "train", "--cache", str(coco_cache), "--out", str(out),
           "--epochs", "2", "--batch-size", "8", "--save-every-steps", "1", "--no-tensorboard", "--quiet"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            states = [json.loads(p.read_text())["global_step"] for p in (out / "checkpoints").glob("*/trainer_state.json")
                      if not p.parent.name.startswith(".")] \
                if (out / "checkpoints").is_dir() else []     # (not a state being written: it is renamed away)
            if states and max(states) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()[1][-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads((out / "last.json").read_text())["global_step"]
    assert 3 <= killed_at < 26
    done = train(config(coco_cache, out, resume=True))
    assert done.finished and done.global_step == 26
    w = weights(done.last_checkpoint)
    assert all(torch.equal(w[k], ref_w[k]) for k in ref_w)


def test_two_process_ddp_equals_one_process_with_accumulation(coco_cache, tmp_path):
    args = ["--cache", str(coco_cache), "--epochs", "1", "--batch-size", "8", "--no-train-lm", "--no-tensorboard",
            "--quiet", "--seed", "3"]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "clipprefix.cli", "train", *args, "--out", str(tmp_path / "ddp")],
                         env=dict(ENV, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = train(config(coco_cache, tmp_path / "one", epochs=1, grad_accum=2, train_lm=False, seed=3))
    meta = json.loads((tmp_path / "ddp" / "last.json").read_text())
    assert meta["global_step"] == one.global_step == 7              # 100 captions / (8 x 2)
    state = json.loads((tmp_path / "ddp" / meta["path"] / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and sorted(state["param_names"]) == sorted(
        json.loads((one.last_checkpoint / "trainer_state.json").read_text())["param_names"])
    a, b = weights(tmp_path / "ddp" / meta["path"]), weights(one.last_checkpoint)
    changed = [k for k in a if k.startswith("mapper.")]
    assert changed and all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)
    h = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert h[0]["val_loss"] == pytest.approx(one.history[0]["val_loss"], rel=1e-4)
    assert h[0]["train_loss"] == pytest.approx(one.history[0]["train_loss"], rel=1e-4)


def test_wandb_only_when_asked(coco_cache, tmp_path):
    pytest.importorskip("tensorboard")
    if "wandb" in sys.modules or __import__("importlib").util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    res = train(config(coco_cache, tmp_path / "a", epochs=1))
    assert res.finished and "wandb" not in sys.modules
    with pytest.raises(ClipPrefixError, match="pip install wandb"):
        train(config(coco_cache, tmp_path / "b", epochs=1, wandb="my-project"))
