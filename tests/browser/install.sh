#!/usr/bin/env bash
# Set-up for the browser test and the notebook-output check (what `make test-browser` runs first).
#   bash tests/browser/install.sh [PYTHON]    PYTHON: the project's venv python (default .venv/bin/python)
# - Chromium and ChromeDriver from Debian's packages (/usr/bin/chromium): no browser download of a
#   test tool's own (`playwright install` fails on a closed network, and is never run here);
# - JupyterLab, nbclient and Python Playwright into the venv: the playwright wheel carries its own
#   Node driver, which drives /usr/bin/chromium (executable_path=...), offline.
# Idempotent: a second run installs nothing (about 10 s: pip resolving, one Chromium start).
set -euo pipefail
PY="${1:-${PYTHON:-.venv/bin/python}}"
t0=$(date +%s)
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  # ~120 MB download, ~500 MB on disk, ~50 s on a Debian 12 machine with the package mirror close by
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
fi
# JupyterLab and nbclient come with clipprefix[dev]; Playwright is the `browser` extra (pyproject.toml)
"$PY" -m pip install -q "jupyterlab>=4.2" "nbclient>=0.10" "playwright>=1.45"
# the bundled driver must run offline and find Debian's browser
"$PY" - <<'PYEOF'
import tempfile
from playwright.sync_api import sync_playwright
flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
with sync_playwright() as p:
    ctx = p.chromium.launch_persistent_context(tempfile.mkdtemp(), executable_path="/usr/bin/chromium",
                                               headless=True, args=flags)
    page = ctx.new_page()
    page.set_content("<p id=x>ok</p>")
    assert page.text_content("#x") == "ok"
    print("chromium", ctx.browser.version if ctx.browser else "", "driven by playwright: ok")
    ctx.close()
PYEOF
echo "browser test set-up done in $(( $(date +%s) - t0 )) s"
