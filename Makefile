# ctloop: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-project
PYTEST_ARGS ?=

.PHONY: install test demo compile lint typecheck clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build of 2.13.0 (a looser requirement can pull a CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	# the closed loop on this machine: drift → alert → retrain → gate → promote → hot-swap
	# (real Prometheus + Alertmanager where installed, else the watcher's embedded evaluator)
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/ctloop demo --out $(DEMO_DIR)
	$(VENV)/bin/ctloop registry champion --config $(DEMO_DIR)/ctloop.yaml

compile: install
	$(VENV)/bin/ctloop compile

lint: install
	$(VENV)/bin/ruff check src components pipelines tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
