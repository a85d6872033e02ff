# Set-up and everyday commands. `make demo` and `make test` do all set-up on a fresh machine.
# torch==2.13.0 is installed before the package: an unpinned torch would pull CUDA wheels.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kinemic-installed

.PHONY: venv demo test lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: venv
	$(BIN)/kinemic demo

test: venv lint
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: venv
	$(BIN)/python bench/features.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
