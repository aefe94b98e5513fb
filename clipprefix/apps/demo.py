"""The offline demo's five steps (`clipprefix demo`, commands/demo.py): synthetic data, tiny CLIP features,
a trained tiny captioner, the video's subtitles, and an evaluation with its gallery, all in one folder
that the demo claims (a marker file) so that it never replaces files it did not write."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import synthetic
from ..synthetic import tiny
from ..base.errors import ClipPrefixError
from ..base.files import atomic_write_text
from ..base.threads import torch_threads
from ..core.captioner import Captioner
from ..core.encoder import ClipEncoder
from ..data.extract import extract
from ..evaluation.evaluate import evaluate
from ..evaluation.gallery import make_gallery
from ..training.config import TrainConfig
from ..training.trainer import train
from .video_captions import caption_video, cue_at

DEFAULT_OUT = Path("outputs") / "demo"
MARKER = ".clipprefix-demo"     # marks a folder as the demo's own: a later run may replace what is inside
DEMO_FILES = {MARKER, "data", "features", "run", "captions", "eval", "demo_video.mp4", "video.html"}


def claim_folder(out: Path) -> None:
    """Make `out` the demo's folder; refuse a folder with someone else's files in it (the demo replaces its
    own earlier results, and must never delete a user's)."""
    if out.exists() and not out.is_dir():
        raise ClipPrefixError(f"{out} is a file; the demo writes into a folder.")
    earlier = out.is_dir() and (out / "demo_video.mp4").is_file() and all(
        p.name in DEMO_FILES for p in out.iterdir())        # a demo folder from before the marker existed
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not earlier:
        raise ClipPrefixError(f"{out} already holds files that `clipprefix demo` did not write; choose a new or empty "
                              "folder with --out.")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by clipprefix demo; its files here may be replaced by the next demo run\n")


@dataclass
class DemoResult:
    out: Path
    checkpoint: Path
    video: Path
    files: dict[str, Path]
    scenes: list[dict] = field(default_factory=list)    # per scene: time, truth, caption, correct
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def correct(self) -> int:
        return sum(s["correct"] for s in self.scenes)


def make_data(out: Path, *, seed: int = 0, n_train: int = 384, n_val: int = 48):
    """The synthetic image dataset (every colour/shape/place/count combination, several times) and the video."""
    synthetic.make_coco_karpathy(out / "data" / "coco", seed, n_train=n_train, n_restval=0, n_val=n_val, n_test=0)
    return synthetic.make_video(out / "demo_video.mp4", seed, n_scenes=4, scene_seconds=3.0)


def extract_features(out: Path, *, progress: bool = True) -> dict[str, Path]:
    """Tiny-CLIP feature caches of the train and val splits."""
    enc = ClipEncoder.load("tiny")
    caches = {}
    for split in ("train", "val"):
        caches[split] = out / "features" / split
        extract("coco", out / "data" / "coco", caches[split], split=split, encoder=enc, overwrite=True,
                progress=progress)
    return caches


def train_captioner(out: Path, caches: dict[str, Path], *, epochs: int = 10, seed: int = 0,
                    verbose: bool = True) -> Path:
    """Train the tiny captioner on the caches; returns its best checkpoint folder."""
    run = out / "run"
    if run.exists():
        shutil.rmtree(run)   # our own previous demo run (run() claimed the folder): start afresh
    res = train(TrainConfig(cache=str(caches["train"]), val_cache=str(caches["val"]), out=str(run), init="tiny",
                            epochs=epochs, seed=seed, tensorboard=False, log_every=10**9, verbose=verbose))
    return res.best_checkpoint


def write_video_page(result, out: Path) -> Path:
    """An HTML page of the video's cues, each with its frame and score."""
    page = ("<!doctype html><meta charset='utf-8'><title>clipprefix demo: the video</title>"
            "<h1>clipprefix demo: captions of the synthetic video</h1>" + result._repr_html_())
    return atomic_write_text(out / "video.html", page)


def evaluate_and_gallery(ckpt: Path, caches: dict[str, Path], out: Path, log=print):
    """Score the trained captioner on the val split and write the best/worst gallery (`gallery.py`);
    None, with the reason logged, when the metrics cannot run here (they need Java)."""
    try:
        res = evaluate(ckpt, caches["val"], out / "eval", verbose=False)
    except (ClipPrefixError, ImportError) as e:   # no Java, or the eval extra (pycocoevalcap) not installed
        log(f"[demo] no evaluation gallery: {e}")
        return None, None
    gal = make_gallery(res, out / "eval", by=("CIDEr", "CLIPScore"), n=6, figures=False,
                       title="clipprefix demo: best and worst captions of the synthetic val split")
    return res, gal.html


def check_scenes(result, video) -> list[dict]:
    """For each scene: the cue on screen at its middle, and whether it names what was drawn."""
    rows = []
    for s in video.scenes:
        cue = cue_at(result.cues, (s.start + s.end) / 2)
        said = synthetic.caption_parts(cue.text if cue else "")
        want = {k: s.attributes[k] for k in ("colour", "shape", "position", "count")}
        rows.append({"start": s.start, "end": s.end, "truth": s.caption, "caption": cue.text if cue else "",
                     "correct": all(said[k] == v for k, v in want.items())})
    return rows


def run(out: str | Path = DEFAULT_OUT, *, epochs: int = 10, n_train: int = 384, seed: int = 0,
        progress: bool = True, log=print) -> DemoResult:
    """Run the five steps into `out`; returns the files written and the per-scene check."""
    claim_folder(Path(out))      # before anything slow: a refused folder fails at once
    t = time.perf_counter()
    tiny.clip_dir(), tiny.tokenizer_dir()       # built once per machine; its CLIP pretraining gains from threads
    if time.perf_counter() - t > 1:
        log(f"[demo] built the tiny preset's CLIP tower and tokenizer once ({time.perf_counter() - t:.0f} s)")
    with torch_threads(1):   # a tiny model on a shared machine: see base/threads.py
        return _run(Path(out), epochs, n_train, seed, progress, log)


def _run(out: Path, epochs: int, n_train: int, seed: int, progress: bool, log) -> DemoResult:
    times: dict[str, float] = {}
    t = time.perf_counter()

    def step(name: str, msg: str) -> None:
        nonlocal t
        times[name] = time.perf_counter() - t
        log(f"[demo] {msg} ({times[name]:.1f} s)")
        t = time.perf_counter()

    log(f"[demo] 1/5 synthetic data -> {out / 'data'}")
    video = make_data(out, seed=seed, n_train=n_train)
    step("data", f"{n_train} training images and a {video.duration:.0f} s video of {len(video.scenes)} scenes")
    log("[demo] 2/5 CLIP features (tiny local CLIP)")
    caches = extract_features(out, progress=progress)
    step("features", f"feature caches in {out / 'features'}")
    log(f"[demo] 3/5 training the tiny captioner for {epochs} epochs")
    ckpt = train_captioner(out, caches, epochs=epochs, seed=seed, verbose=progress)
    step("train", f"checkpoint {ckpt}")
    log("[demo] 4/5 captioning the video, one segment per second")
    cap = Captioner.from_pretrained(ckpt)
    result = caption_video(cap, video.path, "every:1", progress=progress)
    files = result.write(out / "captions", keyframes=True)
    files["video page"] = write_video_page(result, out)
    step("caption", f"{len(result.segments)} segments -> {len(result.cues)} cues")
    log("[demo] 5/5 evaluation on the val split and a gallery of its best and worst captions")
    ev, gallery = evaluate_and_gallery(ckpt, caches, out, log)
    if gallery is not None:
        files["gallery"] = gallery
        scores = ", ".join(f"{k} {v * 100:.1f}" for k, v in ev.metrics.items() if k in ("BLEU-4", "CIDEr", "CLIPScore"))
        step("eval", f"val split: {scores}; gallery {gallery}")
    else:
        step("eval", "evaluation skipped")
    scenes = check_scenes(result, video)
    res = DemoResult(out, ckpt, video.path, files, scenes, times)
    log("[demo] what the captioner says about each scene of the video:")
    for s in scenes:
        log(f"  {s['start']:4.1f}-{s['end']:4.1f} s  {'ok ' if s['correct'] else 'bad'}  {s['caption']!r}"
            f"   (drawn: {s['truth']!r})")
    log(f"[demo] {res.correct}/{len(scenes)} scenes captioned correctly, in {sum(times.values()):.0f} s. Results:")
    for k in ("srt", "vtt", "json", "keyframes", "video page", "gallery"):
        if k in files:
            log(f"  {k:10s} {files[k]}")
    log(f"  {'model':10s} {ckpt}")
    log("[demo] next: clipprefix caption my_video.mp4   (the published ClipCap COCO weights, downloaded once)")
    return res
