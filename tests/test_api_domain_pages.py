"""GET /api/v1/domains a page at a time: opaque cursors, filters, and each token's own rows.

Domains are written straight into the store (the list reads what is there, whatever made it),
on both engines. The index each filter pages through is checked in the query plans.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from linkcert.api.routes.paging import encode_cursor
from linkcert.domains import DomainQuery, find_domains
from linkcert.store import Domain, Store
from linkcert.testbed.statements import recorded_statements
from tests.api_support import World, app_for, assert_problem, bearer, client


@pytest.fixture
def api(world: World) -> httpx.AsyncClient:
    return client(app_for(world))


def add_domains(
    store: Store, names: Iterable[str], account_id: int | None = None, **values: Any
) -> None:
    with store.session() as session:
        for name in names:
            session.add(
                Domain(
                    name=name,
                    unicode_name=name,
                    registrable=name.split(".", 1)[-1],
                    account_id=account_id,
                    **values,
                )
            )


async def all_pages(api: httpx.AsyncClient, token: str, url: str) -> list[list[str]]:
    """Every page from `url` on, following `next`, as lists of names."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url is not None:
        response = await api.get(next_url, headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([d["domain"] for d in body["items"]])
        next_url = body["next"]
        assert len(pages) < 100, "the pages never end"
    return pages


async def test_without_parameters_a_first_page_of_100_and_a_next_cursor(
    api: httpx.AsyncClient, world: World
) -> None:
    add_domains(world.store, (f"d{i:03}.fleet.test" for i in range(250)), world.a_id)
    first = await api.get("/api/v1/domains", headers=bearer(world.operator))
    body = first.json()
    assert len(body["items"]) == 100
    assert body["next"].startswith("/api/v1/domains?cursor=")
    pages = await all_pages(api, world.operator, "/api/v1/domains")
    assert [len(p) for p in pages] == [100, 100, 52]
    names = [n for p in pages for n in p]
    assert names == sorted(names) and len(set(names)) == 252
    assert names[-2:] == ["links.alpha.test", "links.beta.test"]


async def test_an_exact_multiple_of_the_page_ends_without_an_empty_page(
    api: httpx.AsyncClient, world: World
) -> None:
    add_domains(world.store, (f"d{i:02}.fleet.test" for i in range(8)))  # 10 with the world's
    pages = await all_pages(api, world.operator, "/api/v1/domains?limit=5")
    assert [len(p) for p in pages] == [5, 5]
    one = await all_pages(api, world.operator, "/api/v1/domains?limit=1000")
    assert [len(p) for p in one] == [10]
    empty = await all_pages(api, world.operator, "/api/v1/domains?prefix=nothing.")
    assert empty == [[]]


async def test_rows_written_or_deleted_between_pages(api: httpx.AsyncClient, world: World) -> None:
    add_domains(world.store, (f"d{i:02}.fleet.test" for i in range(0, 40, 2)))  # d00 d02 ... d38
    first = (await api.get("/api/v1/domains?limit=5", headers=bearer(world.operator))).json()
    assert [d["domain"] for d in first["items"]][-1] == "d08.fleet.test"
    # Between pages: one name before the cursor, one after; the next page's first row deleted.
    add_domains(world.store, ["d03.fleet.test", "d11.fleet.test"])
    with world.store.session() as session:
        session.execute(delete(Domain).where(Domain.name == "d10.fleet.test"))
    rest = await all_pages(api, world.operator, first["next"])
    names = [n for p in rest for n in p]
    assert names[:3] == ["d11.fleet.test", "d12.fleet.test", "d14.fleet.test"]
    assert "d03.fleet.test" not in names and "d10.fleet.test" not in names
    assert len(names) == len(set(names)) == 1 + 14 + 2  # d11, d12..d38, the world's two


async def test_bad_or_forged_cursors_are_a_clear_400(api: httpx.AsyncClient, world: World) -> None:
    add_domains(world.store, (f"d{i}.fleet.test" for i in range(4)), world.a_id, dns_state="ok")
    page = (await api.get("/api/v1/domains?limit=2", headers=bearer(world.operator))).json()
    cursor = page["next"].split("cursor=")[1]
    not_json = base64.urlsafe_b64encode(b"links.alpha.test").decode().rstrip("=")
    wrong_shape = base64.urlsafe_b64encode(json.dumps({"after": "x"}).encode()).decode()
    for query in [
        "cursor=%%%",
        "cursor=" + not_json,
        "cursor=" + wrong_shape,
        "cursor=" + "A" * 500,
        # A real cursor with other filters than it was made for.
        f"cursor={cursor}&dns_state=ok",
        f"cursor={cursor}&prefix=d",
    ]:
        response = await api.get(f"/api/v1/domains?limit=2&{query}", headers=bearer(world.operator))
        problem = assert_problem(response, 400, "invalid-cursor")
        assert problem["fix"].startswith("Start again from the first page"), problem
    too_long = await api.get("/api/v1/domains?cursor=" + "A" * 600, headers=bearer(world.operator))
    assert_problem(too_long, 422, "validation-error")


async def test_filters_page_with_the_cursor(api: httpx.AsyncClient, world: World) -> None:
    add_domains(world.store, (f"a{i:02}.fleet.test" for i in range(12)), world.a_id, dns_state="ok")
    add_domains(world.store, (f"b{i:02}.fleet.test" for i in range(12)), world.b_id, dns_state="ok")
    add_domains(
        world.store,
        (f"a{i:02}.other.test" for i in range(12)),
        world.a_id,
        dns_state="dns_error",
        failure_class="dns_not_ready",
    )
    url = f"/api/v1/domains?limit=5&dns_state=ok&account_id={world.a_id}&prefix=A"
    pages = await all_pages(api, world.operator, url)
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [n for p in pages for n in p] == [f"a{i:02}.fleet.test" for i in range(12)]
    failing = await all_pages(
        api, world.operator, "/api/v1/domains?limit=7&failure_class=dns_not_ready"
    )
    assert [len(p) for p in failing] == [7, 5]
    assert all(n.endswith(".other.test") for p in failing for n in p)
    assert await all_pages(api, world.operator, "/api/v1/domains?prefix=a00.") == [
        ["a00.fleet.test", "a00.other.test"]
    ]
    # Characters LIKE would read as wildcards are plain text in a prefix.
    assert await all_pages(api, world.operator, "/api/v1/domains?prefix=a_0") == [[]]
    assert await all_pages(api, world.operator, "/api/v1/domains?prefix=%25") == [[]]


async def test_an_account_pages_through_its_own_domains_only(
    api: httpx.AsyncClient, world: World
) -> None:
    add_domains(world.store, (f"a{i:02}.fleet.test" for i in range(7)), world.a_id)
    add_domains(world.store, (f"b{i:02}.fleet.test" for i in range(7)), world.b_id)
    own = await all_pages(api, world.a_token, "/api/v1/domains?limit=3")
    names = [n for p in own for n in p]
    assert names == [*(f"a{i:02}.fleet.test" for i in range(7)), "links.alpha.test"]
    # Its own id as a filter is the same list; another account's is not found.
    same = await all_pages(api, world.a_token, f"/api/v1/domains?limit=3&account_id={world.a_id}")
    assert [n for p in same for n in p] == names
    other = await api.get(f"/api/v1/domains?account_id={world.b_id}", headers=bearer(world.a_token))
    assert_problem(other, 404, "not-found")
    # Another token's cursor is refused, and one forged to start anywhere yields own rows only.
    theirs = (await api.get("/api/v1/domains?limit=3", headers=bearer(world.b_token))).json()
    taken = await api.get(theirs["next"], headers=bearer(world.a_token))
    assert_problem(taken, 400, "invalid-cursor")
    operators = (await api.get("/api/v1/domains?limit=3", headers=bearer(world.operator))).json()
    assert_problem(
        await api.get(operators["next"], headers=bearer(world.a_token)), 400, "invalid-cursor"
    )
    scope = {**DomainQuery(owner=world.a_id).key(), "viewer": world.a_id}
    forged = encode_cursor("", scope)
    pages = await all_pages(api, world.a_token, f"/api/v1/domains?limit=100&cursor={forged}")
    assert [n for p in pages for n in p] == names


def test_each_filter_pages_through_an_index(store: Store) -> None:
    """The page query of every filter is a range scan of an index that goes on by name."""
    add_domains(store, (f"d{i:03}.fleet.test" for i in range(300)), None, dns_state="ok")
    expected = {
        DomainQuery(): "name",  # the unique index on name
        DomainQuery(dns_state="ok"): "ix_domains_dns_state_name",
        DomainQuery(cert_state="active"): "ix_domains_cert_state_name",
        DomainQuery(failure_class="internal"): "ix_domains_failure_name",
        DomainQuery(owner=1): "ix_domains_account_name",
        DomainQuery(prefix="d1"): "name",
    }
    for query, index in expected.items():
        with recorded_statements(store) as seen:
            find_domains(store, after="d100.fleet.test", limit=5, query=query)
        statement, parameters = next(s for s in seen if s.sql.lstrip().upper().startswith("SELECT"))
        plan = _plan(store, statement, parameters)
        assert "Seq Scan" not in plan and "SCAN domains" not in plan.replace("USING", ""), plan
        if index != "name":
            assert index in plan, (query, plan)
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, (query, plan)


def _plan(store: Store, statement: str, parameters: Any) -> str:
    with store.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if store.dialect == "postgresql":
            # A test table is tiny, where a sequential scan, or a bitmap scan of an index and
            # a sort of its few rows, is cheaper, depending on the statistics of the moment:
            # ask whether an index serves the query in order at all, as it does when the
            # table is large.
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("SET enable_bitmapscan = off")
            cursor.execute("EXPLAIN " + statement, parameters)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        rows = cursor.fetchall()
        raw.rollback()
    return " / ".join(str(row[-1]) if len(row) > 1 else str(row[0]) for row in rows)


def test_the_indexes_are_migrated_both_ways(store: Store) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from linkcert.store.db import alembic_config

    def indexes() -> set[str]:
        return {str(i["name"]) for i in inspect(store.engine).get_indexes("domains")}

    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from linkcert.store import Base

    assert {"ix_domains_account_name", "ix_domains_dns_state_name"} <= indexes()
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "ix_domains" in repr(d) or "ix_cert" in repr(d)] == []
    assert "ix_domains_account_id" not in indexes()
    config = alembic_config(store.url)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0016")
    assert "ix_domains_account_id" in indexes() and "ix_domains_account_name" not in indexes()
    store.migrate()
    assert "ix_domains_account_name" in indexes()
