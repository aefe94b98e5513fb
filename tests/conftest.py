"""Shared fixtures: the synthetic datasets (written once per session) and the tiny CLIP encoder.

Session fixtures are shared: a test that changes files copies them first.
"""
from __future__ import annotations

import pytest


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
