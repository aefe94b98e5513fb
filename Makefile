# Two commands do all set-up on a fresh machine:
#   make demo   # creates .venv, installs clipprefix, runs the offline demo (tiny preset, synthetic data)
#   make test   # creates .venv, installs clipprefix[dev], runs unit tests + notebooks (smoke mode)
# and
#   make lab           # JupyterLab on the notebooks (clipprefix[notebooks] brings it)
#   make test-browser  # installs Chromium from Debian's packages (apt) and Playwright, then runs notebook 05
#                      # through JupyterLab in headless Chromium (tests/browser)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-browser lab bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/clipprefix demo

test: $(STAMP)
	CLIPPREFIX_SMOKE=1 MPLBACKEND=Agg $(BIN)/python -m pytest --nbval-lax -q

test-browser: $(STAMP)
	bash tests/browser/install.sh $(BIN)/python
	CLIPPREFIX_SMOKE=1 $(BIN)/python -m pytest -m browser tests/browser -q

lab: $(STAMP)
	$(BIN)/python -m jupyter lab notebooks/

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs runs .pytest_cache
