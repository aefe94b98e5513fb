"""The tiny kit's builds: resumable (an interrupted build ends with the same weights), shown with a progress
bar, built once under a lock by concurrent first users; and `tiny-trained`, the briefly trained captioner
smoke mode shows, says what is drawn."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from clipprefix import Captioner, synthetic
from clipprefix.synthetic import tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Interrupt(KeyboardInterrupt):
    """What Ctrl-C / a kernel interrupt raises in the middle of a step."""


def interrupt_after(monkeypatch, module, name, calls):
    """Make `module.name` raise Interrupt on its `calls`-th call (counting from 1)."""
    real, seen = getattr(module, name), [0]

    def wrapped(*a, **kw):
        seen[0] += 1
        if seen[0] == calls:
            raise Interrupt()
        return real(*a, **kw)
    monkeypatch.setattr(module, name, wrapped)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_an_interrupted_clip_build_resumes_to_the_same_weights(tmp_path, monkeypatch, capsys):
    straight = tiny.pretrain_tiny_clip(steps=4, every=2, progress=False)
    partial = tmp_path / ".clip.partial"
    per_step = len(synthetic.STILLS)             # each step draws every still scene once
    with monkeypatch.context() as m:
        interrupt_after(m, tiny, "draw_still", 3 * per_step + 5)     # during step 4, after the state of step 2
        with pytest.raises(Interrupt):
            tiny.pretrain_tiny_clip(steps=4, every=2, partial=partial, progress=False)
    assert (partial / "state.json").is_file() and '"step": 2' in (partial / "state.json").read_text()
    calls = [0]
    real = tiny.draw_still
    monkeypatch.setattr(tiny, "draw_still", lambda *a, **kw: calls.__setitem__(0, calls[0] + 1) or real(*a, **kw))
    resumed = tiny.pretrain_tiny_clip(steps=4, every=2, partial=partial, desc="tiny CLIP (test)")
    assert calls[0] == 2 * per_step                                # steps 3 and 4 only
    assert same_weights(resumed, straight)
    assert "tiny CLIP (test)" in capsys.readouterr().err          # the progress bar


def test_an_interrupted_captioner_build_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """The captioner trains with dropout: torch's RNG state is part of the partial work."""
    straight = tiny.train_tiny_captioner(steps=4, progress=False).model
    partial = tmp_path / ".tiny-trained.partial"
    with monkeypatch.context() as m:
        interrupt_after(m, tiny, "encode_captions", 4)             # during step 4, after the state of step 2
        with pytest.raises(Interrupt):
            tiny.train_tiny_captioner(steps=4, partial=partial, every=2, progress=False)
    resumed = tiny.train_tiny_captioner(steps=4, partial=partial, every=2, progress=False).model
    assert same_weights(resumed, straight)
    assert not same_weights(resumed, tiny.train_tiny_captioner(steps=3, progress=False).model)   # the check can fail


def test_concurrent_first_uses_wait_for_one_build(tmp_path):
    """Two processes want the same build-once folder: one builds it, the other waits and uses it."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from clipprefix.base.files import write_folder
        def fill(d):
            with open({str(tmp_path / 'builds.log')!r}, "a") as f:
                f.write(sys.argv[1] + "\\n")
            time.sleep(1.5)                       # a slow build: the other process arrives meanwhile
            (d / "done").write_text(sys.argv[1])
        print(write_folder({str(tmp_path / 'cache' / 'thing')!r}, fill, replace=False))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k)], stdout=subprocess.PIPE, text=True)
             for k in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len((tmp_path / "builds.log").read_text().split()) == 1          # built once
    assert outs[0] == outs[1] == str(tmp_path / "cache" / "thing") and (tmp_path / "cache" / "thing" / "done").is_file()


def test_the_trained_tiny_preset_says_what_is_drawn():
    cap = Captioner.from_pretrained("tiny-trained")
    rng = np.random.default_rng(2024)                     # fresh drawings, not the ones it trained on
    caps = cap.caption_images([synthetic.draw_still(s, rng) for s in synthetic.STILLS])
    right = [synthetic.caption_parts(c.text) == {"colour": s.colour, "shape": s.shape, "count": s.count,
                                                 "position": s.position, "direction": None}
             for s, c in zip(synthetic.STILLS, caps)]
    assert np.mean(right) >= 0.9, [c.text for c in caps[:8]]
    assert cap.config["training"]["data"].startswith("synthetic stills") and cap.config["lm"]["trainable"]
