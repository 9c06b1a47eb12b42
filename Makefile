# The README's commands. Each target creates .venv and installs what it needs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEVSTAMP:= $(VENV)/.installed-dev

.PHONY: demo test test-learning bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(DEVSTAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $@

## demo: the main job on CartPole-v1; writes curves, a figure and a summary under runs/
demo: $(STAMP)
	$(BIN)/python experiments/compare.py --out runs/demo --overwrite

## test: the import contract (pyproject.toml), then every test but the learning runs, on 2
## processes (files with shared fixtures stay together), then the serial ones
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadgroup
test: $(DEVSTAMP)
	$(BIN)/lint-imports
	$(PYTEST) -m "not serial and not learning" tests
	$(BIN)/python -m pytest -q -m "serial and not learning" tests

## test-learning: the learning runs (fixed seeds, real thresholds; minutes each); CI runs both
test-learning: $(DEVSTAMP)
	$(PYTEST) -m "learning" tests

## bench: throughput benchmarks (print their figures; never part of the tests)
bench: $(STAMP)
	$(BIN)/python benchmarks/async_throughput.py
	$(BIN)/python benchmarks/conv_in_loop.py

clean:
	rm -rf $(VENV) runs .pytest_cache
