"""The command line starts fast because it imports only what the command run needs.

Each case runs in a fresh interpreter and reports which heavy packages ended up in
`sys.modules`; the start-up times themselves are measured by `bench/cli_start.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linkcert.store import Store

# What the service needs and a short command does not. (Not pydantic: Typer itself loads it to
# convert arguments.)
SERVICE_ONLY = {
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "acme",
    "josepy",
    "OpenSSL",
    "cryptography",
    "prometheus_client",
    "httpx",
    "requests",
    "jinja2",
    "dns",
}

_REPORT = """
import json, sys
from linkcert.cli import app
argv = json.loads(sys.argv[1])
if argv:
    try:
        app(argv)
    except SystemExit:
        pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _loaded(argv: list[str], env: dict[str, str] | None = None) -> set[str]:
    run = subprocess.run(
        [sys.executable, "-c", _REPORT, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    marker = run.stderr.rfind("\nMODULES ")
    assert marker >= 0, run.stderr
    return set(json.loads(run.stderr[marker + len("\nMODULES ") :]))


def test_importing_the_cli_loads_none_of_the_service() -> None:
    assert _loaded([]) & SERVICE_ONLY == set()


def test_help_loads_none_of_the_service() -> None:
    assert _loaded(["--help"]) & SERVICE_ONLY == set()
    assert _loaded(["domain", "--help"]) & SERVICE_ONLY == set()


@pytest.fixture
def data_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKCERT_")}
    env["LINKCERT_DATA_DIR"] = str(tmp_path)
    # A store at the current schema, as after the first command (which migrates, with Alembic).
    Store(f"sqlite:///{tmp_path / 'linkcert.sqlite3'}").migrate()
    return env


def test_domain_status_loads_the_store_and_settings_only(data_env: dict[str, str]) -> None:
    loaded = _loaded(["domain", "status", "links.nowhere.test", "--json"], data_env)
    assert "sqlalchemy" in loaded  # it did reach the store
    assert loaded & SERVICE_ONLY == {"sqlalchemy"}


def test_check_loads_dns_and_settings_only(data_env: dict[str, str]) -> None:
    argv = ["check", "links.shop.test", "--target", "edge.platform.test", "--allow-test-domains"]
    argv += ["--nameserver", "127.0.0.1:9", "--timeout", "0.2", "--json"]
    loaded = _loaded(argv, data_env)
    assert "dns" in loaded  # it did check
    assert loaded & SERVICE_ONLY == {"dns"}
