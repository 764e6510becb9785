# One set of commands for people and CI. `make audit` installs and runs the main job; `make test` installs and tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.modelshield-installed

.PHONY: install audit test test-slow lint format clean

# torch first, pinned to the local CPU build: a plain `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

# Exit 1 means "findings at or above --fail-on": the reports are written, so make does not treat it as a failure.
audit: install
	$(BIN)/modelshield audit --target zoo:digits-cnn --out report || [ $$? -eq 1 ]

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry src

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) report .pytest_cache .mypy_cache .ruff_cache
