"""Shared fixtures: databases on both engines, a loopback DNS server, the API tests' world.

PostgreSQL tests run against the server at 127.0.0.1:5432 (database `test`), each test run in a
schema of its own. On CI (`CI` set) a missing server is a failure, never a silent skip.

Markers say what a test needs started: `postgres`, `pebble`, `browser`. A test that uses a
fixture needing one gets the marker from `pytest_collection_modifyitems` below (the PostgreSQL
half of `db_url`/`store` included), so `pytest -m "not pebble and not postgres and not browser"`
is a quick run that needs nothing started. A test that starts one of them itself (a subprocess,
`start_platform`) carries the marker in its module.

Helpers live in modules not named `test_*`: `api_support` (the `world` below), `e2e_support`
(a loopback platform: DNS and Pebble), `edge_support`, `web_support`, `browser_support`,
`notify_support`, `certs_support`; waiting and free ports come from `linkcert.testbed.waiting`,
throwaway certificates from `linkcert.testbed.pki`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from linkcert.store import Store
from linkcert.testbed.localdns import LocalDNSServer
from tests.api_support import World, make_world

pytest_plugins = ["tests.fixtures_pebble"]

PG_URL = os.environ.get(
    "LINKCERT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        return str(exc).splitlines()[0]
    return None


def require_postgres() -> None:
    problem = _postgres_available()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required on CI and is not reachable: {problem}")
    pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {problem}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    require_postgres()
    schema = "lc_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, pool_pre_ping=True)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated-ready database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'linkcert.sqlite3'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    db = Store(db_url)
    db.migrate()
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def dns_server() -> Iterator[LocalDNSServer]:
    """A started LocalDNSServer on 127.0.0.1 (a free port), empty, stopped after the test."""
    with LocalDNSServer() as server:
        yield server


@pytest.fixture
def world(store: Store) -> World:
    """An operator and two accounts with their tracking domains and tokens (see api_support)."""
    return make_world(store)


# The fixtures that start or reach something, by the marker a test using them needs.
NEEDS = {
    "postgres": {"postgres_url"},
    # `platform`: the modules' loopback platform of e2e_support.start_platform (DNS and Pebble).
    "pebble": {"pebble", "pebble_factory", "pebble_acme_settings", "platform"},
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in NEEDS.items():
            if used & fixtures and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))
