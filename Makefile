# Two commands on a fresh machine with Python 3.11:  `make demo`  and  `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
OUT    ?= runs/demo

.PHONY: venv demo test test-all browser bench docs notebooks clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/loyalty-sim demo --out $(OUT) --force

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m ''

# The report's browser test drives headless Chromium: Debian's package, installed once
# (apt-get, as root: the project's machines and CI run as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium for the report's browser test (once)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_speed.py
	$(BIN)/python benchmarks/calibration_speed.py
	PYTHONPATH=. $(BIN)/python benchmarks/optimise_bench.py

notebooks: $(STAMP)
	$(BIN)/python notebooks/build_notebooks.py --execute runs/notebooks

docs: $(STAMP)
	$(BIN)/loyalty-sim reference --out docs/reference.md
	$(BIN)/loyalty-sim reference --model --out docs/model.md

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
