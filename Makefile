# The two entry points of the README. Each prepares what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup system-packages lint bench bench-edge clean

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

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# linkcert's edge side by side with Caddy (needs Debian's caddy and wrk); see bench/RESULTS.md.
bench-edge: setup
	$(BIN)/python -m bench.edge $(BENCH_EDGE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
