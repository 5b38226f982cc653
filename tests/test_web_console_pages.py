"""The console's domain list at fleet scale: pages in name order from the last name, counts
from a summary read at most once a minute, none with a search; and paging in a browser."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from linkcert.store import Certificate, Domain, Store, utcnow
from linkcert.testbed.statements import recorded_statements
from linkcert.testbed.waiting import free_port
from linkcert.web import create_app
from linkcert.web.filters import (
    CountsSummary,
    DomainFilter,
    count_by_filter,
    find_console_rows,
    read_counts,
)
from tests.api_support import World, make_world
from tests.web_support import CONSOLE_SETTINGS, operator


def add_domains(store: Store, count: int, **values: Any) -> list[str]:
    names = [f"d{i:03}.fleet.test" for i in range(count)]
    with store.session() as session:
        for name in names:
            session.add(Domain(name=name, unicode_name=name, registrable="fleet.test", **values))
    return names


def all_pages(store: Store, which: DomainFilter, limit: int, search: str = "") -> list[list[str]]:
    pages: list[list[str]] = []
    after: str | None = ""
    while after is not None:
        rows, after = find_console_rows(store, which, search, utcnow(), after=after, limit=limit)
        pages.append([row.status.domain for row in rows])
        assert len(pages) < 100
    return pages


def test_pages_end_exactly_and_continue_after_the_last_name(world: World) -> None:
    add_domains(world.store, 8)  # 10 with the world's two
    assert [len(p) for p in all_pages(world.store, DomainFilter.ALL, 5)] == [5, 5]
    pages = all_pages(world.store, DomainFilter.ALL, 3)
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    names = [n for p in pages for n in p]
    assert names == sorted(names) and len(set(names)) == 10
    assert all_pages(world.store, DomainFilter.ALL, 3, search="nothing") == [[]]


def test_the_expiring_filter_pages_through_its_own_small_sets(world: World) -> None:
    names = add_domains(world.store, 7, dns_state="ok", cert_state="active")
    now = utcnow()
    with world.store.session() as session:
        for number, name in enumerate(names):
            domain = session.scalars(select(Domain).where(Domain.name == name)).one()
            left = timedelta(days=3 if number % 2 else 40)
            cert = Certificate(
                domain_id=domain.id,
                chain_pem="",
                serial=str(number),
                issuer="test",
                not_before=now + left - timedelta(days=90),
                not_after=now + left,
                fingerprint_sha256="0" * 64,
            )
            session.add(cert)
            session.flush()
            domain.current_certificate_id = cert.id
        last = session.scalars(select(Domain).where(Domain.name == names[0])).one()
        last.cert_state = "expired"
    pages = all_pages(world.store, DomainFilter.EXPIRING, 2)
    assert [n for p in pages for n in p] == [names[0], names[1], names[3], names[5]]
    assert [len(p) for p in pages] == [2, 2]
    assert read_counts(world.store, utcnow())[DomainFilter.EXPIRING] == 4


def test_the_summary_counts_what_each_filter_lists(world: World) -> None:
    """The counts grouped by state agree with each filter's own query."""
    add_domains(world.store, 3, dns_state="moved", cert_state="active")
    add_domains_values: list[dict[str, Any]] = [
        {"dns_state": "ok", "cert_state": "failed", "failure_class": "challenge_failed"},
        {"dns_state": "ok", "cert_state": "waiting_for_ca", "failure_class": "rate_limited"},
        {"dns_state": "caa_blocked", "cert_state": "none", "failure_class": "caa_forbids"},
        {"dns_state": "pending", "cert_state": "none", "wanted": False},
    ]
    with world.store.session() as session:
        for number, values in enumerate(add_domains_values):
            name = f"s{number}.fleet.test"
            session.add(Domain(name=name, unicode_name=name, registrable="fleet.test", **values))
    now = utcnow()
    summary = read_counts(world.store, now)
    listed = {
        which: len([n for p in all_pages(world.store, which, 50) for n in p])
        for which in DomainFilter
    }
    assert summary == listed
    assert summary[DomainFilter.ALL] == 9 and summary[DomainFilter.MOVED] == 3
    # A search that every domain matches gives the same counts through SQL alone.
    assert count_by_filter(world.store, "test", now) == summary


def test_counts_are_read_at_most_once_per_interval_and_never_by_a_page_when_warm(
    world: World,
) -> None:
    seconds = [0.0]
    summary = CountsSummary(world.store, refresh_seconds=60, monotonic=lambda: seconds[0])
    with recorded_statements(world.store) as first:
        assert summary.counts()[DomainFilter.ALL] == 2
    assert first
    add_domains(world.store, 3)
    seconds[0] += 30
    with recorded_statements(world.store) as warm:
        assert summary.counts()[DomainFilter.ALL] == 2
    assert warm == []
    seconds[0] += 31
    with recorded_statements(world.store) as stale:
        assert summary.counts()[DomainFilter.ALL] == 2  # shown at once, read again beside
    assert stale == []
    summary.wait_for_refresh(timeout=30)
    assert summary.counts()[DomainFilter.ALL] == 5


async def test_a_console_page_runs_the_same_statements_at_any_fleet_size(world: World) -> None:
    """Warm, a page load reads one page: no count, no grouping, whatever the fleet's size."""
    web = await operator(world)
    await web.get("/console")  # the first load reads the counts
    seen_counts = []
    for size in (10, 200):
        if size == 10:
            add_domains(world.store, size)
        else:
            _more(world.store, size)
        with recorded_statements(world.store) as seen:
            page = await web.get("/console")
        assert page.status_code == 200
        sqls = [s.sql.lower() for s in seen]
        assert not [s for s in sqls if "count(" in s or "group by" in s], sqls
        seen_counts.append(len([s for s in sqls if "domains" in s]))
    assert seen_counts[0] == seen_counts[1], seen_counts
    searched = await web.get("/console?q=d00")
    filters = searched.text.split('<ul class="filters">')[1].split("</ul>")[0]
    assert "Failing" in filters and 'class="count"' not in filters


def _more(store: Store, count: int) -> None:
    with store.session() as session:
        for i in range(count):
            name = f"e{i:04}.fleet.test"
            session.add(Domain(name=name, unicode_name=name, registrable="fleet.test"))


# --- in a browser ---------------------------------------------------------------------------


@asynccontextmanager
async def served(world: World) -> AsyncIterator[str]:
    app = create_app(world.store, CONSOLE_SETTINGS, rate_limit=None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.mark.browser
async def test_an_operator_pages_through_the_domains_in_a_browser(tmp_path: Path) -> None:
    from playwright.async_api import expect

    from tests.browser_support import chromium, new_page

    store = Store(f"sqlite:///{tmp_path / 'console.sqlite3'}")  # the page's side only
    store.migrate()
    world = make_world(store)
    add_domains(world.store, 108)  # 110 with the world's two: pages of 50, 50 and 10
    async with served(world) as url, chromium() as browser, new_page(browser) as page:
        await page.goto(url + "/login")
        await page.fill("#token", world.operator)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Deliverability console")).to_be_visible()
        rows = page.locator("table.domains tbody tr")
        await expect(rows).to_have_count(50)
        await expect(page.locator('a[aria-current="page"] .count')).to_have_text("110")
        await expect(rows.first).to_contain_text("d000.fleet.test")
        await page.get_by_role("link", name="Next page").click()
        await expect(rows).to_have_count(50)
        await expect(rows.first).to_contain_text("d050.fleet.test")
        await page.get_by_role("link", name="Next page").click()
        await expect(rows).to_have_count(10)
        await expect(rows.last).to_contain_text("links.beta.test")
        await expect(page.get_by_role("link", name="Next page")).to_have_count(0)
        assert re.search(r"after=d099\.fleet\.test", page.url), page.url
    store.close()
