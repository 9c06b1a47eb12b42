# The README's commands. Each target creates .venv and installs what it needs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEVSTAMP:= $(VENV)/.installed-dev

.PHONY: demo test test-long bench clean

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

## test: the import contract (pyproject.toml), then every test but the long ones, on 2
## processes (files with shared fixtures stay together), then the serial ones
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadgroup
FAST   := not learning and not slow
test: $(DEVSTAMP)
	$(BIN)/lint-imports
	$(PYTEST) -m "$(FAST) and not serial" tests
	$(BIN)/python -m pytest -q -m "$(FAST) and serial" tests

## test-long: the learning runs (fixed seeds, real thresholds) and the slow system tests
## (Ray, notebooks, kill -9 then resume); CI runs it after make test
test-long: $(DEVSTAMP)
	$(PYTEST) -m "learning or slow" tests

## bench: throughput benchmarks (print their figures; never part of the tests)
bench: $(STAMP)
	$(BIN)/python benchmarks/async_throughput.py
	$(BIN)/python benchmarks/conv_in_loop.py

clean:
	rm -rf $(VENV) runs .pytest_cache
