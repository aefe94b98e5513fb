"""Feature caches: what extract writes loads back, equals CLIP on the sampled frames, refuses other
settings, survives kill -9, skips and reports bad items, and shards + merges."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from clipprefix.apps import cli
from clipprefix.data import video
from clipprefix.data import datasets as D
from clipprefix.data import cache as C
from clipprefix.data import cache_writer as W
from clipprefix.data import extract as F
from clipprefix.apps.commands import extract as extract_cmd
from clipprefix.base.errors import ClipPrefixError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def msrvtt_cache(tmp_path_factory, synth_root, tiny_encoder):
    out = tmp_path_factory.mktemp("cache") / "msrvtt"
    res = F.extract("msrvtt", synth_root / "msrvtt", out, split="all", encoder=tiny_encoder, shard_items=6,
                    progress=False)
    return out, res


def test_video_cache_loads_back_and_equals_clip_on_the_sampled_frames(msrvtt_cache, synth_root, tiny_encoder):
    out, res = msrvtt_cache
    assert (res.n_items, res.n_encoded, res.bad, res.complete) == (20, 20, [], True)
    assert len(list(out.glob("shard-*.safetensors"))) == 4   # 20 items, 6 per shard
    cache = C.FeatureCache.open(out, encoder=tiny_encoder, sampling="uniform:16", dataset="msrvtt", split="all")
    assert len(cache) == 20 and cache.embed_dim == tiny_encoder.embed_dim
    items = {i.id: i for i in D.load("msrvtt", synth_root / "msrvtt", "all")}
    assert set(cache.ids) == set(items)
    for vid in ("video0", "video13", "video19"):
        feats, ts = cache.features(vid), cache.timestamps(vid)
        assert feats.shape == (16, tiny_encoder.embed_dim) and feats.dtype == torch.float16
        frames = list(video.sample(items[vid].path, "uniform:16", short_side=tiny_encoder.spec["preprocess"]["size"]))
        assert ts.tolist() == pytest.approx([f.time for f in frames])
        want = tiny_encoder.encode_pixels(tiny_encoder.preprocess([f.image for f in frames]))
        torch.testing.assert_close(feats.float(), want, atol=2e-2, rtol=1e-2)
        assert cache.captions(vid) == items[vid].captions and len(cache.captions(vid)) == 20
        assert cache.split_of(vid) == items[vid].split
    x, mask = cache.padded(["video0", "video1"])
    assert x.shape == (2, 16, tiny_encoder.embed_dim) and mask.all()
    assert [c.id for c in cache][:2] == cache.ids[:2]


def test_fast_resize_barely_changes_features(synth_root, tiny_encoder):
    path = D.load("msrvtt", synth_root / "msrvtt", "train")[0].path
    size = tiny_encoder.spec["preprocess"]["size"]
    fast = [f.image for f in video.sample(path, "uniform:4", short_side=size)]
    full = [f.image for f in video.sample(path, "uniform:4")]
    a, b = tiny_encoder.encode_images(fast), tiny_encoder.encode_images(full)
    # 0.986 at worst on this clip with the tiny-v3 tower (500 steps; > 0.99 with tiny-v2's 700)
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.98


def test_image_cache_is_one_frame(tmp_path, synth_root, tiny_encoder):
    res = F.extract("coco", synth_root / "coco", tmp_path / "c", split="val", encoder=tiny_encoder, progress=False)
    cache = C.FeatureCache.open(tmp_path / "c")
    items = D.load("coco", synth_root / "coco", "val")
    assert res.n_encoded == len(cache) == len(items) == 4
    from PIL import Image
    for it in items:
        assert cache.features(it.id).shape == (1, tiny_encoder.embed_dim) and cache.timestamps(it.id).tolist() == [0.0]
        want = tiny_encoder.encode_images([Image.open(it.path).convert("RGB")])
        torch.testing.assert_close(cache.features(it.id).float(), want, atol=2e-2, rtol=1e-2)
        assert cache.captions(it.id) == it.captions


def test_other_settings_are_refused(msrvtt_cache, tiny_encoder):
    out, _ = msrvtt_cache
    other = dict(tiny_encoder.spec, normalize=True)
    name = re.escape(f"{tiny_encoder.spec['model']}/None")
    with pytest.raises(ClipPrefixError, match=f"was made with CLIP {name}, not {name} \\(L2-normalised\\)"):
        C.FeatureCache.open(out, encoder=other)
    with pytest.raises(ClipPrefixError, match="samples frames by uniform:16, not uniform:8"):
        C.FeatureCache.open(out, sampling="uniform:8")
    with pytest.raises(ClipPrefixError, match="holds dataset 'msrvtt', not 'coco'"):
        C.FeatureCache.open(out, dataset="coco")
    with pytest.raises(ClipPrefixError, match="other settings \\(sampling differ\\)"):
        F.extract("msrvtt", "unused", out, split="all", encoder=tiny_encoder, sampling="every:1", progress=False)
    with pytest.raises(ClipPrefixError, match="not a feature cache"):
        C.FeatureCache.open(out.parent)


def test_rerun_computes_nothing(msrvtt_cache, synth_root, tiny_encoder):
    out, _ = msrvtt_cache
    before = sorted(p.name for p in out.iterdir())
    res = F.extract("msrvtt", synth_root / "msrvtt", out, split="all", encoder=tiny_encoder, shard_items=6, progress=False)
    assert (res.n_done_before, res.n_encoded) == (20, 0)
    assert sorted(p.name for p in out.iterdir()) == before


_KILLABLE = textwrap.dedent("""
    import sys, time
    from clipprefix.data import extract as F
    from clipprefix.core.encoder import ClipEncoder
    enc = ClipEncoder.load("tiny")
    encode = enc.encode_pixels
    def slow(pixels):          # slow enough to be killed mid-run
        time.sleep(0.03)
        return encode(pixels)
    enc.encode_pixels = slow
    print("ready", flush=True)
    F.extract("msrvtt", sys.argv[1], sys.argv[2], split="all", encoder=enc, batch_size=1, shard_items=2,
              progress=False)
    print("finished", flush=True)
""")


def _indexed_shards(out) -> list:
    try:
        return json.loads((out / "index.json").read_text())["shards"]
    except (OSError, ValueError, KeyError):
        return []


def test_kill_9_then_resume(tmp_path, synth_root, tiny_encoder, msrvtt_cache):
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(synth_root / "msrvtt"), str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while len(_indexed_shards(out)) < 2:   # at least 4 items saved (a shard counts once the index lists it)
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "extraction did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    n_shards = len(list(out.glob("shard-*.safetensors")))
    assert n_shards < 10, "the run finished before it was killed; slow it down"
    with pytest.raises(ClipPrefixError, match="unfinished"):
        C.FeatureCache.open(out)
    partial = C.FeatureCache.open(out, allow_partial=True)
    saved = set(partial.ids)
    assert len(saved) >= 4 and len(saved) % 2 == 0   # whole shards only
    # a kill between a shard's rename and the index update leaves a whole shard the index does not list yet;
    # resume finds it on disk and counts its items as done
    unlisted = {p.name for p in out.glob("shard-*.safetensors")} - set(partial.index["shards"])
    saved |= {r["id"] for name in unlisted for r in C._shard_records(out / name, name)}
    (out / ".shard-00099.safetensors.dead.tmp").write_bytes(b"half a shard")   # what a kill mid-write leaves

    res = F.extract("msrvtt", synth_root / "msrvtt", out, split="all", encoder=tiny_encoder, shard_items=2, progress=False)
    assert res.n_done_before == len(saved) and res.n_encoded == 20 - len(saved)   # nothing computed twice
    assert not list(out.glob(".*.tmp"))
    cache = C.FeatureCache.open(out)
    assert sorted(cache.ids) == sorted(set(cache.ids)) and len(cache) == 20   # no duplicates, nothing lost
    records = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert len(records) == 20
    clean = C.FeatureCache.open(msrvtt_cache[0])
    for vid in cache.ids:   # the killed run's items equal a clean run's
        torch.testing.assert_close(cache.features(vid).float(), clean.features(vid).float(), atol=2e-2, rtol=1e-2)


def test_bad_items_are_skipped_reported_and_strict_fails(tmp_path, synth_root):
    root = tmp_path / "user"
    shutil.copytree(synth_root / "user", root)
    (root / "clips" / "broken.mp4").write_bytes(os.urandom(5000))
    (root / "notanimage.jpg").write_text("hello")
    with open(root / "captions.csv", "a") as f:
        f.write("clips/broken.mp4,a broken clip\nnotanimage.jpg,not an image\ngone.jpg,a missing file\n")
    out = tmp_path / "cache"
    args = ["extract", "--dataset", "folder", "--root", str(root), "--split", "all", "--out", str(out),
            "--model", "tiny", "--quiet"]
    assert cli.main(args + ["--strict"]) == 1
    report = json.loads((out / "report.json").read_text())
    reasons = {b["id"]: b["reason"] for b in report["bad"]}
    assert set(reasons) == {"clips/broken", "notanimage", "gone"}
    assert "broken.mp4 cannot be opened" in reasons["clips/broken"]
    assert "notanimage.jpg cannot be read" in reasons["notanimage"]
    assert "gone.jpg does not exist" in reasons["gone"]
    cache = C.FeatureCache.open(out)
    assert len(cache) == 6 and cache.features("clips/clip_000").shape[0] == 16
    assert cli.main(args) == 0   # not strict: bad items are retried, still reported, exit 0


def test_shards_and_merge_equal_one_run(tmp_path, synth_root, tiny_encoder, msrvtt_cache, monkeypatch):
    out = tmp_path / "sharded"
    for i in range(3):
        F.extract("msrvtt", synth_root / "msrvtt", out, split="all", encoder=tiny_encoder, shard=(i, 3), progress=False)
        if i == 1:
            with pytest.raises(ClipPrefixError, match="lacks parts 2/3"):
                W.merge(out)
    with pytest.raises(ClipPrefixError, match="parts that are not merged"):
        C.FeatureCache.open(out)
    W.merge(out)
    merged, single = C.FeatureCache.open(out), C.FeatureCache.open(msrvtt_cache[0])
    assert sorted(merged.ids) == sorted(single.ids)
    for vid in merged.ids:
        torch.testing.assert_close(merged.features(vid), single.features(vid), atol=2e-2, rtol=1e-2)
        assert merged.captions(vid) == single.captions(vid)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert extract_cmd._parse_shard(None) == (1, 4) and extract_cmd._parse_shard("2/3") == (2, 3)


def test_cli_extract_coco(tmp_path, synth_root):
    out = tmp_path / "coco"
    assert cli.main(["extract", "--dataset", "coco", "--root", str(synth_root / "coco"), "--split", "test",
                     "--out", str(out), "--model", "tiny", "--quiet"]) == 0
    cache = C.FeatureCache.open(out, split="test")
    assert len(cache) == 4 and np.isfinite(cache.features(cache.ids[0]).float().numpy()).all()


def test_cli_dtype_auto_is_recorded_and_another_dtype_cannot_resume(tmp_path, synth_root, capsys):
    from clipprefix.core.encoder import resolve_dtype

    out = tmp_path / "coco"
    args = ["extract", "--dataset", "coco", "--root", str(synth_root / "coco"), "--split", "test",
            "--out", str(out), "--model", "tiny", "--quiet"]
    assert cli.main(args) == 0                                    # --dtype auto, the default
    auto = str(resolve_dtype("auto", "cpu")).replace("torch.", "")
    assert C.FeatureCache.open(out).meta["compute_dtype"] == auto
    was, other = ("bf16", "fp32") if auto == "bfloat16" else ("fp32", "bf16")
    assert cli.main(args + ["--dtype", other]) != 0
    assert f"(compute_dtype differ: it was computed in {was}, pass --dtype {was} to resume it)" in capsys.readouterr().err
    assert cli.main(args + ["--dtype", was]) == 0


def test_damaged_shard_is_named(tmp_path, msrvtt_cache):
    out = tmp_path / "damaged"
    shutil.copytree(msrvtt_cache[0], out)
    cache = C.FeatureCache.open(out)
    victim = cache._rec[cache.ids[0]]["shard"]
    (out / victim).write_bytes(b"not a safetensors file" * 10)
    with pytest.raises(ClipPrefixError, match=f"shard .*{victim} cannot be read"):
        cache.features(cache.ids[0])
