"""The README's MSR-VTT recipe, end to end through the CLI on the synthetic MSR-VTT layout:
extract (train / val / test) -> train a video captioner -> evaluate it on the test split."""
from __future__ import annotations

import json

import torch

from clipprefix.apps import cli
from clipprefix.data import cache as C
from clipprefix.core.captioner import Captioner
from clipprefix.evaluation.evaluate import load_predictions


def test_msrvtt_extract_train_evaluate_from_the_cli(synth_root, tmp_path, capsys):
    caches = {}
    for split in ("train", "val", "test"):
        caches[split] = tmp_path / f"msrvtt_{split}"
        assert cli.main(["extract", "--dataset", "msrvtt", "--root", str(synth_root / "msrvtt"), "--split", split,
                         "--model", "tiny", "--sampling", "uniform:8", "--out", str(caches[split]), "--quiet"]) == 0
    sizes = {s: len(C.FeatureCache.open(c, split=s if s != "val" else "val")) for s, c in caches.items()}
    assert sizes == {"train": 12, "val": 4, "test": 4}                     # make_all's 60/20/20 split of 20 clips
    run = tmp_path / "run"
    assert cli.main(["train", "--cache", str(caches["train"]), "--val-cache", str(caches["val"]), "--config",
                     "tiny-video", "--out", str(run), "--epochs", "3", "--batch-size", "32", "--no-tensorboard",
                     "--quiet"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 3 and history[-1]["val_loss"] < history[0]["val_loss"]
    best = run / "best"
    assert json.loads((best / "config.json").read_text())["mapper"]["type"] == "video"
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(best), "--cache", str(caches["test"]), "--out",
                     str(tmp_path / "eval")]) == 0
    assert "| BLEU-1 |" in capsys.readouterr().out
    meta = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert meta["dataset"] == "msrvtt" and meta["split"] == "test" and meta["n_items"] == 4
    assert {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "CLIPScore", "RefCLIPScore"} <= set(meta["metrics"])
    # the predictions are the trained video captioner's, reading the 8 frames of each clip in order
    cache = C.FeatureCache.open(caches["test"])
    items = load_predictions(tmp_path / "eval")
    direct = Captioner.from_pretrained(best).caption_features(torch.stack([cache.features(i["id"]) for i in items]).float())
    assert [i["prediction"] for i in items] == [c.text for c in direct]
    assert all(len(i["timestamps"]) == 8 and len(i["references"]) == len(cache.captions(i["id"])) for i in items)


def test_cli_extract_flickr30k(synth_root, tmp_path):
    out = tmp_path / "flickr"
    assert cli.main(["extract", "--dataset", "flickr30k", "--root", str(synth_root / "flickr30k"), "--split", "all",
                     "--model", "tiny", "--out", str(out), "--quiet"]) == 0
    cache = C.FeatureCache.open(out, dataset="flickr30k")
    assert len(cache) == 28 and all(len(cache.captions(i)) == 5 for i in cache.ids)
    assert cache.features(cache.ids[0]).shape == (1, 128)
