"""Only `linkcert migrate` and `linkcert serve` create a database: every other command on a
missing or unmigrated one stops with one line naming it and what to run, exit status 2."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linkcert.cli import app
from linkcert.keys import generate_master_key
from linkcert.store import Store
from linkcert.testbed.waiting import free_port
from tests.ownership_support import prove

MASTER_KEY = generate_master_key("db")


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("LINKCERT_"):
            monkeypatch.delenv(name)
    return {"LINKCERT_DATA_DIR": str(tmp_path / "data"), "LINKCERT_TRACKING_KEY": "t" * 40}


READ_AND_WRITE_COMMANDS = [
    ["domain", "list", "--json"],
    ["domain", "status", "links.shop.test"],
    ["domain", "set", "shop", "links.shop.test"],
    ["account", "create", "shop"],
    ["token", "list"],
    ["link", "create", "links.shop.test", "https://shop.example/"],
]


@pytest.mark.parametrize("command", READ_AND_WRITE_COMMANDS, ids=" ".join)
def test_a_missing_sqlite_file_is_not_created_and_is_named(
    env: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    code, out, err = run(env, *command)
    assert code == 2, out
    assert out == ""
    database = tmp_path / "data" / "linkcert.sqlite3"
    assert len(err.strip().splitlines()) == 1
    assert f"no database at sqlite:///{database}" in err
    assert "linkcert migrate" in err
    assert "Traceback" not in err
    assert not database.exists() and not database.parent.exists()


def test_an_unmigrated_sqlite_file_is_left_alone(env: dict[str, str], tmp_path: Path) -> None:
    database = tmp_path / "data" / "linkcert.sqlite3"
    database.parent.mkdir()
    sqlite3.connect(database).close()
    code, out, err = run(env, "domain", "list", "--json")
    assert (code, out) == (2, "")
    assert f"the database at sqlite:///{database} has no linkcert schema" in err
    assert "run `linkcert migrate` first" in err
    with sqlite3.connect(database) as connection:  # no table was made in it
        assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_migrate_creates_it_and_then_the_commands_work(env: dict[str, str], tmp_path: Path) -> None:
    code, out, _ = run(env, "migrate")
    assert code == 0
    database = tmp_path / "data" / "linkcert.sqlite3"
    assert f"created a new, empty database at sqlite:///{database}" in out
    assert database.is_file()
    code, again, _ = run(env, "migrate")
    assert code == 0 and "created" not in again
    assert f"the database at sqlite:///{database} is at the current schema" in again
    assert database.is_file()
    code, out, err = run(env, "domain", "list", "--json")
    assert (code, out.strip(), err) == (0, "[]", "")


def test_an_older_schema_asks_for_migrate(env: dict[str, str], tmp_path: Path) -> None:
    database = tmp_path / "data" / "linkcert.sqlite3"
    Store(f"sqlite:///{database}").migrate()
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    code, _, err = run(env, "domain", "list")
    assert code == 2
    assert "is at schema 0001" in err and "run `linkcert migrate` first" in err


def test_an_unreachable_postgresql_is_named_with_its_password_masked(
    env: dict[str, str],
) -> None:
    url = f"postgresql+psycopg://linkcert:s3cret-pw@127.0.0.1:{free_port()}/linkcert"
    env["LINKCERT_DATABASE_URL"] = url
    code, out, err = run(env, "domain", "list", "--json")
    assert (code, out) == (2, "")
    assert "s3cret-pw" not in err
    assert f"postgresql+psycopg://linkcert:********@127.0.0.1:{url.split(':')[3]}" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.postgres
def test_an_unmigrated_postgresql_schema_asks_for_migrate(
    env: dict[str, str], postgres_url: str
) -> None:
    env["LINKCERT_DATABASE_URL"] = postgres_url
    code, _, err = run(env, "domain", "list", "--json")
    assert code == 2
    assert "has no linkcert schema: run `linkcert migrate` first" in err


@pytest.mark.parametrize("role", ["worker", "api", "edge"])
def test_a_single_role_does_not_create_the_database(tmp_path: Path, role: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINKCERT_")}
    environment |= {
        "LINKCERT_DATA_DIR": str(tmp_path / "data"),
        "LINKCERT_MASTER_KEY": MASTER_KEY,
        "LINKCERT_TRACKING_KEY": "t" * 40,
        "LINKCERT_CNAME_TARGETS": "track.platform.test",
        "LINKCERT_HTTP_LISTEN": "127.0.0.1:0",
        "LINKCERT_HTTPS_LISTEN": "127.0.0.1:0",
        "LINKCERT_API_LISTEN": "127.0.0.1:0",
    }
    process = subprocess.run(
        [sys.executable, "-m", "linkcert", role],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 2, process.stderr
    assert "no database at sqlite:///" in process.stderr
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "data" / "linkcert.sqlite3").exists()


def test_link_create_carries_data(env: dict[str, str], tmp_path: Path) -> None:
    import base64
    import json

    from linkcert.tracking import read_token, tracking_key_from_secret

    env = {**env, "LINKCERT_ALLOW_TEST_DOMAINS": "true"}
    assert run(env, "migrate")[0] == 0
    assert run(env, "account", "create", "shop", "--email", "ops@shop.example")[0] == 0
    code, out, err = run(env, "domain", "set", "shop", "links.shop.test")
    assert code == 0, err
    store = Store(f"sqlite:///{tmp_path / 'data' / 'linkcert.sqlite3'}")
    prove(store, "links.shop.test", "shop")  # links are made only on proven names
    store.close()
    code, out, err = run(
        env,
        "link",
        "create",
        "links.shop.test",
        "https://shop.example/",
        "--data",
        "rcpt=42",
        "--json",
    )
    assert code == 0, err
    made = json.loads(out)
    token = made["url"].rsplit("/", 1)[1]
    link = read_token(tracking_key_from_secret("t" * 40), "links.shop.test", token)
    assert (link.data, base64.b64decode(made["data_base64"])) == (b"rcpt=42", b"rcpt=42")
    code, out, err = run(
        env, "link", "create", "links.shop.test", "https://shop.example/", "--data", "x" * 256
    )
    assert code != 0 and out == ""
    assert "255" in err and "Traceback" not in err


def test_an_absolute_sqlite_path_is_shown_as_configured() -> None:
    from linkcert.config import mask_url_password

    assert mask_url_password("sqlite:////var/lib/linkcert/db.sqlite3") == (
        "sqlite:////var/lib/linkcert/db.sqlite3"
    )
    assert mask_url_password("postgresql://lc:secret@db:5432/lc") == (
        "postgresql://lc:********@db:5432/lc"
    )
