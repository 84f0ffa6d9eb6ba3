# The two commands of the README are `make run` and `make test`; everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: the service needs only its runtime dependencies; the dev tools (pytest, mypy,
# ruff, ...) come with `make test`, so a venv made by `make run` holds what production holds.
RUNTIME_STAMP := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench mutate clean

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: set up and run the service (embedded PostgreSQL; Cal.com simulator without CALCOM_API_KEY)
run: $(RUNTIME_STAMP)
	$(BIN)/booking-guard serve

## test: set up and run every check: ruff, mypy, the import contracts and the whole pytest suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

## mutate: mutation testing of the guard chain (not part of `make test`; see README)
mutate: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,mutation]'
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest-postgres .mypy_cache .ruff_cache .pytest_cache mutants
