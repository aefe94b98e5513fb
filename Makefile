# Two commands do all set-up on a fresh machine:
#   make demo   # creates .venv, installs clipprefix, runs the offline demo (tiny preset, synthetic data)
#   make test   # creates .venv, installs clipprefix[dev], runs unit tests + notebooks (smoke mode)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

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

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs runs .pytest_cache
