# `make dev` and `make test` set up everything they need on first use (virtualenv, packages).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Installs come from the lock: every dependency pinned, resolved once for Linux x86_64 and Python 3.11.
# LOCK: the server, the client and the dev extra (make install, the Dockerfile's constraints);
# BENCH_LOCK: the same pins plus the bench extra. `make lock` writes both; pyproject.toml holds lower bounds.
LOCK       := requirements/lock.txt
BENCH_LOCK := requirements/bench.txt
UV_VERSION := 0.13.9
LOCK_FLAGS := --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-strip-markers \
              --custom-compile-command "make lock"

.PHONY: dev test test-fast install bench lint lock clean

# The client (client/, import name engram_client) is installed from its path, never by name:
# "engram-client" on PyPI is an unrelated project. Both projects go in with --no-deps: their
# dependencies are the lock's, and pip check fails when pyproject.toml asks for something the lock
# lacks (run `make lock` after editing dependencies).
$(STAMP): $(LOCK) pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e ./client -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Engram, its Python client and its test tools, from the lock

dev: $(STAMP) ## run api, worker, scheduler and Flower (embedded PostgreSQL and Redis unless configured)
	$(BIN)/engram dev

test: $(STAMP) ## the whole suite: unit, integration (real PostgreSQL/Redis) and end-to-end (real processes)
	bash scripts/install-browser.sh
	$(BIN)/python -m pytest

bench: $(STAMP) ## the benchmark: real system, same-run references; writes bench/results.json and bench/report.md
	$(BIN)/pip install --quiet -r $(BENCH_LOCK)
	$(BIN)/python -m bench

soak: $(STAMP) ## 20,000 integrations on separate hosts under a fault every ~20 s (root; at most 30 min); prints the counts
	$(BIN)/python -m tests.hosts.soak $(SOAK_ARGS)

lint: $(STAMP) ## ruff, mypy and the layers of shared/ (import-linter), as CI runs them
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test-fast: $(STAMP) ## unit and integration tests only
	$(BIN)/python -m pytest tests/unit tests/integration

# `make lock` upgrades every pin to the newest release pyproject.toml allows;
# `make lock ONLY="celery redis"` upgrades only those, keeping the other pins;
# `make lock UPGRADE=` upgrades nothing: it only resolves what pyproject.toml changed.
# Then run `make install` and the tests, and commit requirements/.
UPGRADE = $(if $(ONLY),$(foreach package,$(ONLY),--upgrade-package $(package)),--upgrade)

lock: ## re-resolve requirements/lock.txt and requirements/bench.txt with uv (installed into .venv)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile $(LOCK_FLAGS) $(UPGRADE) pyproject.toml client/pyproject.toml --extra dev -o $(LOCK)
	$(BIN)/uv pip compile $(LOCK_FLAGS) $(UPGRADE) pyproject.toml client/pyproject.toml --extra dev --extra bench \
	    -c $(LOCK) -o $(BENCH_LOCK)

clean:
	rm -rf $(VENV) .engram .pytest_cache
