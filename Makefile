# The README's commands. Each target creates .venv and installs what it needs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEVSTAMP:= $(VENV)/.installed-dev

.PHONY: demo test test-fast bench clean

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
	$(BIN)/python experiments/compare.py --out runs/demo

## test: the whole test suite
test: $(DEVSTAMP)
	$(BIN)/python -m pytest -q tests

## test-fast: everything but the learning tests
test-fast: $(DEVSTAMP)
	$(BIN)/python -m pytest -q -m "not learning" tests

## bench: throughput benchmarks (print their figures; never part of the tests)
bench: $(STAMP)
	$(BIN)/python benchmarks/async_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
