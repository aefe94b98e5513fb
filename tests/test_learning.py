"""Learning is real: the tiny preset, trained from scratch on this CPU, on the synthetic datasets.

- Images: held-out renderings (one per colour x shape x position x count, 96 in all) must be captioned
  exactly (the greedy caption, normalised, is one of the item's references) >= 90% of the time, after
  at most 3 minutes of training. An untrained model scores 0%.
- Videos: held-out clips (one per colour x shape x direction, 48 in all): the video mapper must name
  the motion direction >= 90% of the time; the same model fed the same frames shuffled stays near
  chance. Any frame order still shows the axis (horizontal or vertical), so chance is 50%, not 25%.

Numbers are printed (pytest -s); see benchmarks/bench_train.py for the GPT-2-sized figures.
"""
from __future__ import annotations

import re
import time

import pytest
import torch

from clipprefix.data import cache as C
from clipprefix.data import extract as F
from clipprefix import synthetic
from clipprefix.core.captioner import Captioner
from clipprefix.core.captioner import new_captioner
from clipprefix.training.config import TrainConfig
from clipprefix.training.trainer import train

pytestmark = pytest.mark.slow
TRAIN_BUDGET_S = 180


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_encoder):
    """576 training images (6 renderings of each of the 96 scenes), 48 val, 96 test; 192 training clips
    (4 of each of the 48 motions), 48 test clips; tiny-CLIP caches of them."""
    r = tmp_path_factory.mktemp("learning")
    synthetic.make_coco_karpathy(r / "coco", seed=0, n_train=576, n_restval=0, n_val=48, n_test=96)
    F.extract("coco", r / "coco", r / "coco_all", split="all", encoder=tiny_encoder, progress=False)
    synthetic.make_msrvtt(r / "msrvtt", seed=0, n_train=192, n_val=0, n_test=48)
    F.extract("msrvtt", r / "msrvtt", r / "msrvtt_all", split="all", encoder=tiny_encoder, sampling="uniform:8",
              progress=False)
    return r


def split_features(cache_dir, split: str):
    cache = C.FeatureCache.open(cache_dir)
    ids = [i for i in cache.ids if cache.split_of(i) == split]
    return ids, torch.stack([cache.features(i) for i in ids]).float(), [cache.captions(i) for i in ids]


def exact_match(cap, feats, refs) -> float:
    preds = cap.caption_features(feats)
    return sum(norm(p.text) in {norm(r) for r in rs} for p, rs in zip(preds, refs)) / len(refs)


def test_images_exact_match_after_minutes_of_training(root, tmp_path):
    ids, feats, refs = split_features(root / "coco_all", "test")
    assert len(ids) == 96 and len({synthetic.caption_parts(r[0])["colour"] for r in refs}) == 4
    baseline = exact_match(new_captioner("tiny", seed=0), feats, refs)
    t0 = time.time()
    res = train(TrainConfig(cache=str(root / "coco_all"), out=str(tmp_path / "run"), init="tiny", epochs=5,
                            batch_size=64, tensorboard=False, verbose=False))
    seconds = time.time() - t0
    acc = exact_match(Captioner.from_pretrained(res.best_checkpoint), feats, refs)
    print(f"\n[learning] images: exact match {acc:.1%} on {len(ids)} held-out images after {seconds:.0f} s of "
          f"training (untrained: {baseline:.1%}); val loss {res.history[0]['val_loss']:.3f} -> "
          f"{res.history[-1]['val_loss']:.3f}")
    assert baseline < 0.05
    assert seconds < TRAIN_BUDGET_S
    assert acc >= 0.90


def test_video_mapper_needs_frame_order_for_the_direction(root, tmp_path):
    ids, feats, refs = split_features(root / "msrvtt_all", "test")
    truth = [synthetic.caption_parts(r[0]) for r in refs]
    assert len(ids) == 48 and feats.shape[1] == 8
    assert len({t["direction"] for t in truth}) == 4
    t0 = time.time()
    res = train(TrainConfig(cache=str(root / "msrvtt_all"), out=str(tmp_path / "run"), init="tiny-video",
                            epochs=10, batch_size=64, tensorboard=False, verbose=False))
    seconds = time.time() - t0
    cap = Captioner.from_pretrained(res.last_checkpoint)
    g = torch.Generator().manual_seed(0)
    shuffled = torch.stack([f[torch.randperm(f.shape[0], generator=g)] for f in feats])

    def scores(x):
        said = [synthetic.caption_parts(c.text) for c in cap.caption_features(x)]
        direction = sum(s["direction"] == t["direction"] for s, t in zip(said, truth)) / len(truth)
        axis = sum(s["direction"] is not None and (s["direction"].split()[0] in ("left", "right"))
                   == (t["direction"].split()[0] in ("left", "right")) for s, t in zip(said, truth)) / len(truth)
        return direction, axis

    (d_ord, a_ord), (d_shuf, a_shuf) = scores(feats), scores(shuffled)
    print(f"\n[learning] videos: direction right {d_ord:.1%} with frames in order, {d_shuf:.1%} shuffled "
          f"(axis right {a_ord:.1%} / {a_shuf:.1%}) on {len(ids)} held-out clips after {seconds:.0f} s of training")
    assert seconds < TRAIN_BUDGET_S
    assert d_ord >= 0.90
    assert d_shuf <= 0.70          # near the 50% chance left once the axis is known
    assert a_shuf >= 0.80          # shuffled frames still show where the shape moves: only the order is lost
