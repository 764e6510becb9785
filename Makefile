# One set of commands for people and CI. `make audit` installs and runs the main job; `make test` installs and tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.modelshield-installed

.PHONY: install audit test test-slow lint format clean

# torch first, pinned to the local CPU build: a plain `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml tests/plugins/example_plugin/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	# A third-party plug-in as an outside package declares one: the entry-point tests discover and run it.
	$(BIN)/python -m pip install --quiet --no-deps -e tests/plugins/example_plugin
	touch $(STAMP)

install: $(STAMP)

# Exit 1 means "findings at or above --fail-on": the reports are written, so make does not treat it as a failure.
audit: install
	$(BIN)/modelshield audit --target zoo:digits-cnn --out report || [ $$? -eq 1 ]

# Exit 5 (no tests collected) fails here, as every non-zero exit does. One worker per core (pytest-xdist): the
# tests run torch on one thread, and the workers share one zoo cache (tests/conftest.py).
test: install
	$(BIN)/python -m pytest -q -n auto --durations=15

test-slow: install
	$(BIN)/python -m pytest -q -m slow --durations=15 tests

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
