"""Shared fixtures: the synthetic datasets (written once per session) and the tiny CLIP encoder.

Session fixtures are shared: a test that changes files copies them first.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """`msrvtt/`, `coco/`, `flickr30k/`, `user/` in the real layouts (20 clips, 28 images, seed 0)."""
    from clipprefix import synthetic

    root = tmp_path_factory.mktemp("synth")
    synthetic.make_all(root, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_encoder():
    """The tiny local CLIP tower (built once into the clipprefix cache folder)."""
    from clipprefix.core.encoder import ClipEncoder

    return ClipEncoder.load("tiny")


@pytest.fixture(scope="module")
def one_torch_thread():
    """The tiny models run as fast on one thread, and then a busy neighbouring core cannot stall every op
    at an OpenMP barrier (base/threads.py)."""
    from clipprefix.base.threads import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory, tiny_encoder):
    """A briefly trained tiny image captioner (a few seconds on one thread) and held-out features with their
    references: output comparisons need a model whose captions depend on the input, not one repeated token."""
    from clipprefix import synthetic
    from clipprefix.base.threads import torch_threads
    from clipprefix.core.captioner import Captioner
    from clipprefix.data.cache import FeatureCache
    from clipprefix.data.extract import extract
    from clipprefix.training.config import TrainConfig
    from clipprefix.training.trainer import train

    root = tmp_path_factory.mktemp("trained_tiny")
    synthetic.make_coco_karpathy(root / "coco", seed=1, n_train=288, n_restval=0, n_val=16, n_test=48)
    extract("coco", root / "coco", root / "cache", split="all", encoder=tiny_encoder, progress=False)
    with torch_threads(1):
        res = train(TrainConfig(cache=str(root / "cache"), out=str(root / "run"), init="tiny", epochs=4,
                                batch_size=64, tensorboard=False, verbose=False, sample_items=0))
    cache = FeatureCache.open(root / "cache")
    test = [i for i in cache.ids if cache.split_of(i) == "test"]
    feats = torch.stack([cache.features(i) for i in test]).float()
    return Captioner.from_pretrained(res.best_checkpoint), feats, [cache.captions(i) for i in test]

