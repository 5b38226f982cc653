# The two entry points of the README. Each prepares what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup system-packages lint bench bench-provision clean

demo: setup
	$(BIN)/linkcert demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

setup: system-packages $(VENV)/.installed

system-packages:
	@scripts/install-system-packages.sh

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Provisioning next to Caddy: `make bench-provision BENCH_ARGS="--wave 100"` for a quick run.
BENCH_ARGS ?= --json var/bench/provision.json
bench-provision: setup
	@scripts/install-system-packages.sh --bench
	$(BIN)/python -m bench.provision $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
