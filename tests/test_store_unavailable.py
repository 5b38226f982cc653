"""A database that cannot do its part (read-only, full, locked past its timeout, down) is a 503
with Retry-After and a stable type on the API, a page in words, and a count in the metrics;
reads that need no write keep working.

Each condition is SQLite's or PostgreSQL's own: a connection set to query only (SQLite's
read-only error), a page limit reached (SQLite's "database or disk is full"), an exclusive lock
held by another connection past a short busy timeout, a PostgreSQL session set read-only, and a
PostgreSQL URL where nothing listens.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from linkcert.api import create_app
from linkcert.store import Store
from linkcert.store.faults import classify
from linkcert.testbed.waiting import free_port
from linkcert.web import create_app as create_app_with_pages
from tests.api_support import (
    PROBLEM_JSON,
    PROBLEMS,
    SETTINGS,
    World,
    bearer,
    client,
    make_world,
)
from tests.web_support import BASE, SCRIPT, browser, csrf_of, log_in


def sqlite_world(tmp_path: Path) -> tuple[World, Path]:
    path = tmp_path / "linkcert.sqlite3"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    return make_world(store), path


def on_every_connection(store: Store, *statements: str) -> None:
    """Run `statements` on each new connection, and drop the ones already open."""

    def run(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()

    event.listen(store.engine, "connect", run)
    store.engine.dispose()


def save(http: httpx.AsyncClient, world: World) -> Any:
    return http.put(
        f"/api/v1/accounts/{world.a_id}/tracking-domain",
        json={"domain": "links.new-alpha.test"},
        headers=bearer(world.a_token),
    )


def read(http: httpx.AsyncClient, world: World) -> Any:
    return http.get(f"/api/v1/accounts/{world.a_id}/tracking-domain", headers=bearer(world.a_token))


def assert_unavailable(response: httpx.Response, code: str, retry_after: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == retry_after
    body = response.json()
    assert body["type"] == PROBLEMS + "store-unavailable"
    assert body["title"] == "Database unavailable"
    assert body["code"] == code
    assert "Nothing already saved is lost" in body["detail"]


def unavailable_count(metrics_text: str, code: str) -> float:
    prefix = f'linkcert_store_unavailable_total{{code="{code}"}} '
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


async def test_a_read_only_sqlite_database_refuses_writes_with_503_and_still_reads(
    tmp_path: Path,
) -> None:
    world, _ = sqlite_world(tmp_path)
    app = create_app(world.store, SETTINGS, rate_limit=None)
    async with client(app) as http:
        before = unavailable_count((await http.get("/metrics")).text, "read_only")
        on_every_connection(world.store, "PRAGMA query_only = ON")
        assert_unavailable(await save(http, world), "read_only", "60")
        reading = await read(http, world)
        assert reading.status_code == 200, reading.text
        assert reading.json()["domain"] == "links.alpha.test"
        after = unavailable_count((await http.get("/metrics")).text, "read_only")
    assert after == before + 1


async def test_a_full_sqlite_database_is_503_disk_full(tmp_path: Path) -> None:
    world, path = sqlite_world(tmp_path)
    with sqlite3.connect(path) as raw:
        pages = raw.execute("PRAGMA page_count").fetchone()[0]
    on_every_connection(world.store, f"PRAGMA max_page_count = {pages}")
    async with client(create_app(world.store, SETTINGS, rate_limit=None)) as http:
        # Enough new rows to need a page more than the file has.
        responses = [
            await http.post(
                "/api/v1/accounts",
                json={"name": f"account {n} " + "x" * 150},
                headers=bearer(world.operator),
            )
            for n in range(60)
        ]
    refused = [r for r in responses if r.status_code != 201]
    assert refused, "the page limit was never reached"
    assert_unavailable(refused[0], "disk_full", "60")


async def test_a_sqlite_database_locked_past_its_timeout_is_503_locked(tmp_path: Path) -> None:
    world, path = sqlite_world(tmp_path)
    on_every_connection(world.store, "PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        async with client(create_app(world.store, SETTINGS, rate_limit=None)) as http:
            assert_unavailable(await save(http, world), "locked", "5")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.fixture
def postgres_world(postgres_url: str) -> Iterator[World]:
    store = Store(postgres_url)
    store.migrate()
    try:
        yield make_world(store)
    finally:
        store.close()


@pytest.mark.postgres
async def test_a_read_only_postgresql_session_is_503_read_only(
    postgres_world: World, postgres_url: str
) -> None:
    read_only = Store(postgres_url + "%20-cdefault_transaction_read_only%3Don")
    try:
        with read_only.session() as session:
            assert session.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
        world = postgres_world
        async with client(create_app(read_only, SETTINGS, rate_limit=None)) as http:
            assert_unavailable(await save(http, world), "read_only", "60")
            assert (await read(http, world)).status_code == 200
    finally:
        read_only.close()


async def test_a_postgresql_that_is_down_is_503_unreachable(tmp_path: Path) -> None:
    world, _ = sqlite_world(tmp_path)
    down = Store(f"postgresql+psycopg://linkcert:pw@127.0.0.1:{free_port()}/linkcert")
    try:
        async with client(create_app(down, SETTINGS, rate_limit=None)) as http:
            response = await http.get("/api/v1/me", headers=bearer(world.operator))
    finally:
        down.close()
    assert_unavailable(response, "unreachable", "10")
    assert "pw" not in response.text


async def test_the_pages_say_it_in_words(tmp_path: Path) -> None:
    world, _ = sqlite_world(tmp_path)
    app = create_app_with_pages(world.store, SETTINGS, rate_limit=None)
    async with browser(app) as page:
        await log_in(page, world.a_token)
        form = await page.get("/account")
        assert form.status_code == 200
        on_every_connection(world.store, "PRAGMA query_only = ON")
        saved = await page.post(
            "/account/tracking-domain",
            data={"domain": "links.new-alpha.test", "csrf_token": csrf_of(form.text)},
            headers={"Origin": BASE},
        )
        assert saved.status_code == 503
        assert saved.headers["retry-after"] == "60"
        assert saved.headers["content-type"].startswith("text/html")
        assert "Temporarily unavailable" in saved.text
        assert "our database is read-only" in saved.text
        assert "Nothing you saved before is lost" in saved.text
        assert "Traceback" not in saved.text and "sqlite" not in saved.text.lower()
        # The page itself still shows, as reads work.
        assert (await page.get("/account")).status_code == 200


def failing(store: Store, statement: str) -> Callable[[], None]:
    def run() -> None:
        with store.session() as session:
            session.execute(text(statement))

    return run


def test_other_database_errors_are_not_store_trouble(tmp_path: Path) -> None:
    world, _ = sqlite_world(tmp_path)
    with pytest.raises(Exception) as caught:
        failing(world.store, "SELECT * FROM no_such_table")()
    assert classify(caught.value) is None


async def test_the_pages_scripts_get_it_as_json(tmp_path: Path) -> None:
    world, _ = sqlite_world(tmp_path)
    app = create_app_with_pages(world.store, SETTINGS, rate_limit=None)
    async with browser(app) as page:
        await log_in(page, world.a_token)
        form = await page.get("/account")
        on_every_connection(world.store, "PRAGMA query_only = ON")
        saved = await page.post(
            "/account/tracking-domain",
            data={"domain": "links.new-alpha.test", "csrf_token": csrf_of(form.text)},
            headers=SCRIPT,
        )
    assert saved.status_code == 503
    assert saved.headers["retry-after"] == "60"
    body = saved.json()
    assert body["code"] == "read_only" and "our database is read-only" in body["error"]
