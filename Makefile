# ctloop: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-project
PYTEST_ARGS ?=

.PHONY: install test demo compile lint typecheck clean bench orchestrator-venvs test-orchestrators

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build of 2.13.0 (a looser requirement can pull a CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: install orchestrator-venvs
	$(PY) -m pytest $(PYTEST_ARGS)

# Airflow, Prefect and Dagster for the submitter tests, each in its own venv (.venv-orch/<name>, pinned
# in tests/orchestrators/constraints-<name>.txt; reinstalled only when that file changes)
orchestrator-venvs: install
	$(PY) -c "from concurrent.futures import ThreadPoolExecutor as P; from tests.helpers_orchestrators import \
	ensure_venv; list(P(4).map(ensure_venv, ('airflow', 'airflow2', 'prefect', 'dagster')))"

# (b): an alert's run completes the real pipeline on each orchestrator (schedulers, workers: slow)
test-orchestrators: orchestrator-venvs
	$(PY) -m pytest -m orchestrators tests/e2e/test_orchestrators_pipeline.py $(PYTEST_ARGS)

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
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .venv-orch
