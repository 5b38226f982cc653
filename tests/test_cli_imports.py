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

from linkcert.domains import create_account, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.store import Store

# What the service needs and a short command does not.
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

# What only the settings model and Typer's Pydantic conversion load: the short commands read
# their few settings without the model (linkcert.config_sources) and convert their plain
# arguments themselves (linkcert.cli.coercion).
MODEL_ONLY = {"pydantic", "pydantic_core", "linkcert.config", "typer._adapters"}

_REPORT = """
import json, sys
from linkcert.cli import app
argv = json.loads(sys.argv[1])
if argv:
    try:
        app(argv)
    except SystemExit:
        pass
names = {m.split(".")[0] for m in sys.modules} | set(sys.modules)
sys.stderr.write("\\nMODULES " + json.dumps(sorted(names)))
"""


def _loaded(argv: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages, and every module by its full name, that running `argv` loads."""
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


def test_help_loads_no_settings_model() -> None:
    assert _loaded(["--help"]) & MODEL_ONLY == set()


def test_domain_status_reads_sqlite_without_sqlalchemy(data_env: dict[str, str]) -> None:
    store = Store(f"sqlite:///{Path(data_env['LINKCERT_DATA_DIR']) / 'linkcert.sqlite3'}")
    create_account(store, "shop")
    set_tracking_domain(store, "shop", "links.shop.test", NamePolicy(allow_test_domains=True))
    store.close()
    argv = ["domain", "status", "links.shop.test", "--json", "--events", "--wait", "0"]
    loaded = _loaded(argv, data_env)
    assert "linkcert.store.reader" in loaded  # it did read the store
    assert "sqlite3" in loaded
    assert loaded & SERVICE_ONLY == set()
    assert "sqlalchemy.orm" not in loaded
    assert loaded & MODEL_ONLY == set()
    assert "rich" not in loaded  # JSON needs no console


def test_domain_status_with_a_config_file_loads_no_model(
    data_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "linkcert.toml"
    config.write_text(f'data_dir = "{tmp_path}"\nsmtp_port = 2525\n')
    env = {k: v for k, v in data_env.items() if k != "LINKCERT_DATA_DIR"}
    loaded = _loaded(["--config", str(config), "domain", "status", "links.nowhere.test"], env)
    assert "linkcert.store.reader" in loaded
    assert loaded & (SERVICE_ONLY | MODEL_ONLY) == set()


def test_check_loads_dns_only(data_env: dict[str, str]) -> None:
    argv = ["check", "links.shop.test", "--target", "edge.platform.test", "--allow-test-domains"]
    argv += ["--nameserver", "127.0.0.1:9", "--timeout", "0.2", "--json"]
    loaded = _loaded(argv, data_env)
    assert "dns" in loaded  # it did check
    assert loaded & SERVICE_ONLY == {"dns"}
    assert loaded & MODEL_ONLY == set()
    assert "rich" not in loaded


def test_a_setting_the_short_commands_do_not_parse_goes_through_the_model(
    data_env: dict[str, str],
) -> None:
    env = {**data_env, "LINKCERT_DNS_TIMEOUT": "3e0"}
    argv = ["check", "links.shop.test", "--target", "edge.platform.test", "--allow-test-domains"]
    argv += ["--nameserver", "127.0.0.1:9", "--timeout", "0.2", "--json"]
    assert "linkcert.config" in _loaded(argv, env)
