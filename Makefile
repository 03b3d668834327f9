# Two entry points: `make demo` (the dashboard) and `make test` (the test suite).
# Both create .venv on first use; later runs reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8866
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench setup

setup: $(STAMP)

# torch first, pinned to the CPU wheel: the package's torch>=... range is then already met
# and pip never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/plasmonwidgets demo --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest -q -rs

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_decode.py
	$(PY) benchmarks/bench_widget_latency.py
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) benchmarks/bench_viewer_render.py
	$(PY) benchmarks/bench_training.py --out benchmarks/results/training.json
	$(PY) benchmarks/bench_protocol.py
