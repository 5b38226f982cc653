# The two entry points of the README. Each prepares what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup system-packages lint bench-provision bench-edge bench-proxy bench-fleet bench-renewal bench-cli clean

demo: setup
	$(BIN)/linkcert demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
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
	$(BIN)/lint-imports

# linkcert's edge side by side with Caddy (needs Debian's caddy and wrk); see bench/RESULTS.md.
# BENCH_EDGE_ARGS=--with-haproxy adds HAProxy (Debian's haproxy) as a third side.
bench-edge: setup
	@scripts/install-system-packages.sh --bench
	$(BIN)/python -m bench.edge $(BENCH_EDGE_ARGS)

# Proxy mode (2 edge processes) next to Caddy's reverse_proxy, both in front of one nginx.
bench-proxy: setup
	@scripts/install-system-packages.sh --bench
	$(BIN)/python -m bench.proxy $(BENCH_PROXY_ARGS)

# A wave of new domains on two workers on PostgreSQL, next to Caddy's on-demand rate.
bench-fleet: setup
	@scripts/install-system-packages.sh --bench
	$(BIN)/python -m bench.fleet --domains 1000

# Renewal scheduling: tick costs at 1k-100k domains, then 1,000 renewals due at once.
bench-renewal: setup
	@scripts/install-system-packages.sh --bench
	$(BIN)/python -m bench.renewal --wave 1000

# How fast `linkcert` starts (--help, domain status, check), with hyperfine.
bench-cli: setup
	@scripts/install-system-packages.sh --bench
	$(BIN)/python -m bench.cli_start

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
