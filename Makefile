# `make dev` and `make test` set up everything they need on first use (virtualenv, packages).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test test-fast install bench lint clean

# The client (client/, import name engram_client) is installed from its path, never by name:
# "engram-client" on PyPI is an unrelated project.
$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./client -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Engram, its Python client and its test tools

dev: $(STAMP) ## run api, worker, scheduler and Flower (embedded PostgreSQL and Redis unless configured)
	$(BIN)/engram dev

test: $(STAMP) ## the whole suite: unit, integration (real PostgreSQL/Redis) and end-to-end (real processes)
	bash scripts/install-browser.sh
	$(BIN)/python -m pytest

bench: $(STAMP) ## the benchmark: real system, same-run references; writes bench/results.json and bench/report.md
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench

lint: $(STAMP) ## ruff and mypy, as CI runs them
	$(BIN)/ruff check .
	$(BIN)/mypy

test-fast: $(STAMP) ## unit and integration tests only
	$(BIN)/python -m pytest tests/unit tests/integration

clean:
	rm -rf $(VENV) .engram .pytest_cache
