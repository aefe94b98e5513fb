"""Every notebook, executed as a JupyterLab user runs it (smoke mode), and what it shows.

Each notebook runs in a fresh kernel over a temporary copy of notebooks/ (nbclient), with the
environment a user has: MPLBACKEND unset, so ipykernel picks the inline backend (`make test` exports
MPLBACKEND=Agg for the unit tests, under which `plt.show()` shows nothing at all), this checkout first
on PYTHONPATH, CLIPPREFIX_SMOKE=1, nothing from the network, and a private TMPDIR. Then:

  1. every cell runs, and the cells' own asserts hold (an error output fails the test);
  2. every figure a notebook promises (PROMISED) is an image/png output, and no output anywhere is a
     figure that rendered as text ('<Figure size ...>' without a PNG beside it);
  3. every picture promised as HTML (captioned images, galleries, comparisons) has an <img>;
  4. no text a user reads (text/plain, text/html, stdout, the explorer's widgets) holds U+FFFD or
     control characters, raw or escaped in a repr (what an untrained model writes);
  5. the kernel leaves (almost) nothing in TMPDIR once it stops.
This replaces nbval's run of the notebooks (which compares no outputs); `pytest --nbval-lax notebooks`
still works. Also here: the notebooks' repository URL is pyproject's, every parameter cell has DEVICE,
and a ClipPrefixError in a notebook shows as one sentence.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
import unicodedata
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = int(os.environ.get("CLIPPREFIX_NB_TIMEOUT", "1800"))   # s; a first tiny build takes minutes
TMP_LEFT_LIMIT = 1_000_000        # bytes a finished notebook may leave in TMPDIR (ipykernel's own files)

# notebook -> [(a substring of the cell's source, what its outputs must hold)]
PROMISED = {
    "00_quickstart.ipynb": [("captions = captioner.caption_images(images, strategy=STRATEGY)", "html-img")],
    "01_extract_features.ipynb": [("plt.show()", "image/png")],
    "02_train_mapper.ipynb": [("result.plot()", "image/png")],
    "03_inference.ipynb": [("CaptionedImages(images, captions)", "html-img"), ("caption_under(images[0]", "image/png"),
                           ("comparison = compare_decoding", "html-img"), ("result = caption_video", "html-img")],
    "04_qualitative_gallery.ipynb": [("make_gallery(beam", "html-img"), ('gallery.figures["CIDEr: worst"]', "image/png")],
}
_ESCAPED = re.compile(r"\\x[0-1][0-9a-f]|\\x7f|\\x[89][0-9a-f]|\\ufffd", re.I)


def bad_chars(text: str) -> list[str]:
    """Replacement and control characters in `text` (newlines and tabs allowed; ANSI colour escapes
    are part of tracebacks and streams only, which are checked separately)."""
    return [f"U+{ord(ch):04X}" for ch in text
            if ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in "\n\r\t")]


def kernel_env(tmpdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"MPLBACKEND", "JPY_PARENT_PID"}}
    env.update(CLIPPREFIX_SMOKE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               TOKENIZERS_PARALLELISM="false", TMPDIR=str(tmpdir), OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return env


def run_notebook(nb, folder: Path, tmpdir: Path):
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(folder)}})
    client.execute(env=kernel_env(tmpdir))     # jupyter_client starts the kernel with this environment
    return nb


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def problems(name: str, nb) -> list[str]:
    """Everything wrong with what the executed notebook shows."""
    out = []
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for c in cells:
        last = c.source.strip().splitlines()[-1][:60] if c.source.strip() else ""
        where = f"cell [{c.get('execution_count')}] `{last}`"
        for o in c.get("outputs", []):
            if o.output_type == "error":
                out.append(f"{where}: raised {o.ename}: {o.evalue[:300]}")
            elif o.output_type in ("execute_result", "display_data"):
                data = o.get("data", {})
                plain = _text(data.get("text/plain", ""))
                if plain.startswith("<Figure size") and "image/png" not in data:
                    out.append(f"{where}: a figure rendered as text ({plain.strip()!r})")
                for mime in ("text/plain", "text/html"):
                    text = _text(data.get(mime, ""))
                    bad = bad_chars(text) + (_ESCAPED.findall(text) if mime == "text/plain" else [])
                    if bad:
                        out.append(f"{where}: {mime} shows replacement/control characters {sorted(set(bad))[:6]}")
            elif o.output_type == "stream" and o.name == "stdout" and bad_chars(o.text):
                out.append(f"{where}: stdout shows replacement/control characters {sorted(set(bad_chars(o.text)))[:6]}")
    for needle, kind in PROMISED.get(name, []):
        outs = [o for c in cells if needle in c.source for o in c.get("outputs", [])
                if o.output_type in ("execute_result", "display_data")]
        if kind == "image/png" and not any("image/png" in o.get("data", {}) for o in outs):
            out.append(f"the figure of `{needle.strip()}` is not an image/png "
                       f"(got {sorted({m for o in outs for m in o.get('data', {})}) or 'no output'})")
        if kind == "html-img" and not any("<img" in _text(o.get("data", {}).get("text/html", "")) for o in outs):
            out.append(f"the pictures of `{needle.strip()}` have no <img> in their HTML")
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model in state.values():       # what the explorer shows lives in its widgets' state
        if model.get("model_name") == "HTMLModel" and bad_chars(model.get("state", {}).get("value", "")):
            out.append("a widget's HTML shows replacement/control characters")
    return out


def _size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_shows_what_it_promises(name, tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("outputs", ".ipynb*"))
    (tmp_path / "tmp").mkdir()
    nb = run_notebook(nbformat.read(tmp_path / "notebooks" / name, as_version=4), tmp_path / "notebooks", tmp_path / "tmp")
    if os.environ.get("CLIPPREFIX_NB_EXECUTED"):      # keep the executed notebook to open in JupyterLab
        Path(os.environ["CLIPPREFIX_NB_EXECUTED"]).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(os.environ["CLIPPREFIX_NB_EXECUTED"]) / name)
    found = problems(name, nb)
    assert not found, f"{name}:\n  " + "\n  ".join(found)
    left = _size(tmp_path / "tmp")
    assert left < TMP_LEFT_LIMIT, f"{name} left {left / 1e6:.1f} MB in TMPDIR: {sorted(os.listdir(tmp_path / 'tmp'))}"


def test_the_checks_catch_what_they_look_for():
    """The checker's rules fire on the defects it exists for (so a pass means something)."""
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("result.plot()", outputs=[
        nbformat.v4.new_output("execute_result", {"text/plain": "<Figure size 600x350 with 1 Axes>"}, execution_count=1)]),
        nbformat.v4.new_code_cell("captions = captioner.caption_images(images, strategy=STRATEGY)", outputs=[
            nbformat.v4.new_output("display_data", {"text/html": "<figure>is is \ufffd\x13</figure>"})])])
    found = problems("02_train_mapper.ipynb", bad) + problems("00_quickstart.ipynb", bad)
    assert any("figure rendered as text" in f for f in found)
    assert any("is not an image/png" in f for f in found)
    assert any("U+FFFD" in f and "U+0013" in f for f in found)
    assert any("have no <img>" in f for f in found)


def test_notebooks_point_at_the_repository_in_pyproject():
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    path = url.removeprefix("https://github.com/")
    for name in NOTEBOOKS:
        text = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / name, as_version=4).cells)
        badges = re.findall(r"colab\.research\.google\.com/github/([^)\s]+)/blob/main/notebooks/([\w.]+)", text)
        pips = re.findall(r"%pip install -q \"clipprefix\[[\w,]+\] @ git\+([^\"]+)\"", text)
        hint = f"{name}: change the notebooks' URL to pyproject's [project.urls] Repository = {url}"
        assert badges == [(path, name)], hint
        assert pips == [url], hint


def test_every_notebook_has_a_device_parameter_that_it_uses():
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert re.search(r'^DEVICE = "auto"', params.source, re.M), name
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and c is not params)
        assert "device=DEVICE" in code, name


def test_a_clipprefix_error_in_a_notebook_is_one_sentence_and_the_cell_still_fails(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from clipprefix import Captioner\nx = 1\nCaptioner.from_pretrained('no-such-preset-or-folder')"),
        nbformat.v4.new_code_cell("reached = True")])
    (tmp_path / "tmp").mkdir()
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError):    # the cell fails: Run All stops there
        client.execute(env=kernel_env(tmp_path / "tmp"))
    err = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    assert len(err) == 1 and err[0].ename == "ClipPrefixError" and not nb.cells[1].outputs
    shown = "\n".join(err[0].traceback)
    assert len(err[0].traceback) == 1 and "No checkpoint 'no-such-preset-or-folder'" in shown
    assert "line 3: Captioner.from_pretrained('no-such-preset-or-folder')" in shown and "Traceback" not in shown
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import clipprefix\ndef f():\n    raise ValueError('other errors keep their traceback')\nf()")])
    client = nbclient.NotebookClient(other, timeout=300, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=kernel_env(tmp_path / "tmp"))
    tb = other.cells[0].outputs[0].traceback
    assert other.cells[0].outputs[0].ename == "ValueError" and len(tb) > 1      # IPython's own traceback


@pytest.mark.skipif(sys.platform != "linux", reason="Colab runs Linux")
def test_colab_defaults_lie_under_content(monkeypatch):
    from clipprefix.base import paths

    monkeypatch.delenv("CLIPPREFIX_DATA", raising=False)
    monkeypatch.delenv("CLIPPREFIX_CHECKPOINTS", raising=False)
    monkeypatch.setattr(paths, "_in_checkout", lambda: False)        # a `%pip install git+...`, not a clone
    assert not paths.on_colab() and paths.data_dir() == Path.home() / "clipprefix-data"
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    assert paths.on_colab()
    assert paths.data_dir() == Path("/content/clipprefix/data")
    assert paths.checkpoints_dir() == Path("/content/clipprefix/checkpoints")
