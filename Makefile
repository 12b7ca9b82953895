# Every target builds its own virtual environment from pyproject.toml: a fresh machine needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output

.PHONY: install test test-all lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

demo: $(STAMP)
	$(BIN)/python -m gliomics.cli.demo --out $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_phantom.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
