"""The sdist carries what its own tests, notebooks and `make test` need, and passes tests unpacked.

Built offline from a copy of the checkout with the installed setuptools (`python -m build --sdist
--no-isolation`), unpacked, and a few test files run from the unpacked folder with its own package
first on the path.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("build")
ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
                              "outputs", "runs", "raw", "interim", "processed", ".ipynb_checkpoints")
NEEDED = ["LICENSE", "MANIFEST.in", "conftest.py", "tests/conftest.py", "environment.yml", "Makefile", ".ci/run",
          "ARCHITECTURE.md", "benchmarks/bench_caption.py", "benchmarks/README.md", "tests/browser/install.sh",
          "tests/browser/test_explorer_browser.py", "checkpoints/README.md", "data/README.md",
          *[f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")],
          "clipprefix/core/configs/checkpoints.json"]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sdist")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    built = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp / "dist"),
                            str(src)], capture_output=True, text=True, env=env, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (archive,) = (tmp / "dist").glob("clipprefix-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (top,) = (tmp / "unpacked").iterdir()
    return top, built.stdout + built.stderr


@pytest.mark.slow
def test_the_sdist_holds_what_its_tests_and_notebooks_need(sdist):
    top, log = sdist
    missing = [p for p in NEEDED if not (top / p).is_file()]
    assert not missing, missing
    meta = (top / "PKG-INFO").read_text()
    assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
    assert "Project-URL: Repository, https://github.com/" in meta
    assert "deprecated" not in log.lower(), [line for line in log.splitlines() if "deprecat" in line.lower()]
    assert not list(top.rglob("__pycache__")) and not (top / "notebooks" / "outputs").exists()


@pytest.mark.slow
def test_the_unpacked_sdist_passes_its_own_tests(sdist, tmp_path):
    top, _ = sdist
    env = dict(os.environ, PYTHONPATH=str(top), OMP_NUM_THREADS="1")
    probe = subprocess.run([sys.executable, "-c", "import clipprefix; print(clipprefix.__file__)"], cwd=top, env=env,
                           capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == str(top / "clipprefix" / "__init__.py")     # the sdist's own package
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_layers.py",
                          "tests/test_datasets.py", "tests/test_notebook_display.py",
                          "tests/test_notebooks.py::test_every_notebook_has_a_device_parameter_that_it_uses",
                          "tests/test_notebooks.py::test_notebooks_point_at_the_repository_in_pyproject"],
                         cwd=top, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0 and " passed" in run.stdout and "error" not in run.stdout.lower(), run.stdout[-3000:]
