"""Clicks are bounded: one address's repeats of one link are answered but recorded only up to a
limit, and the workers delete clicks past their retention, in batches."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, insert, select

from linkcert.config import Settings
from linkcert.keys import generate_master_key
from linkcert.store import Click, Store
from linkcert.testbed.environment import settings_env
from linkcert.tracking.repeats import RepeatLimiter
from linkcert.worker.retention import keep_clicks_pruned, prune_clicks
from tests.edge_support import close_writer, exchange, get, read_response, running_edge
from tests.fleet_support import Process

DOMAIN = "links.shop.test"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_repeats_of_one_key_are_allowed_up_to_the_limit_in_each_window() -> None:
    clock = Clock()
    limiter = RepeatLimiter(3, 600, clock=clock)
    assert [limiter.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("b")  # another key has its own count
    clock.now += 599
    assert not limiter.allow("a")
    clock.now += 1  # a new window
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]


def test_the_limiter_forgets_the_oldest_windows_when_full() -> None:
    clock = Clock()
    limiter = RepeatLimiter(1, 600, max_keys=100, clock=clock)
    for number in range(1000):
        limiter.allow(number)
        clock.now += 0.01
    assert len(limiter) == 100
    assert not limiter.allow(999)  # the latest are remembered
    clock.now += 600
    limiter.allow("fresh")
    assert len(limiter) == 1  # expired windows go as new ones come


async def test_one_address_repeating_a_link_is_answered_but_recorded_up_to_the_limit() -> None:
    async with running_edge(click_repeat_limit=3) as env:
        token = env.token(DOMAIN, 7, "https://shop.example/sale")
        other = env.token(DOMAIN, 8, "https://shop.example/other")
        reader, writer = await env.open_http()
        try:
            for _ in range(5):
                writer.write(get(f"/c/{token}", DOMAIN))
                answer = await read_response(reader)
                assert (answer.status, answer.header("location")) == (
                    302,
                    "https://shop.example/sale",
                )
            for _ in range(4):
                writer.write(get(f"/o/{token}", DOMAIN))
                assert (await read_response(reader)).status == 200
            writer.write(get(f"/c/{token}", DOMAIN, method="HEAD"))  # a machine's, counted apart
            assert (await read_response(reader, head=True)).status == 302
            writer.write(get(f"/c/{other}", DOMAIN))
            assert (await read_response(reader)).status == 302
        finally:
            await close_writer(writer)
        # The same link from another address is that address's own first click.
        from_elsewhere = await exchange_from("127.0.0.2", env.http_port, get(f"/c/{token}", DOMAIN))
        assert from_elsewhere == 302
        assert env.edge.counters.click_repeats_not_recorded == 3
    kinds = [(click.link_id, click.kind) for click in env.clicks if click.machine is None]
    assert kinds.count((7, "click")) == 3 + 1
    assert [(c.link_id, c.machine) for c in env.clicks if c.machine is not None] == [(7, "head")]
    assert kinds.count((7, "open")) == 3
    assert kinds.count((8, "click")) == 1


async def exchange_from(address: str, port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    try:
        writer.write(request)
        return (await read_response(reader)).status
    finally:
        await close_writer(writer)


async def test_without_a_limit_every_repeat_is_recorded() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 9, "https://shop.example/")
        for _ in range(30):
            assert (await exchange(env.http_port, get(f"/c/{token}", DOMAIN))).status == 302
        assert env.edge.counters.click_repeats_not_recorded == 0
    assert len(env.clicks) == 30


def add_clicks(store: Store, ages_in_days: list[float]) -> None:
    rows = [
        {"domain": DOMAIN, "link_id": 1, "kind": "click", "at": NOW - timedelta(days=age)}
        for age in ages_in_days
    ]
    with store.session() as session:
        session.execute(insert(Click), rows)


def click_ages(store: Store) -> list[float]:
    with store.session() as session:
        times = session.scalars(select(Click.at).order_by(Click.at)).all()
    return [round((NOW - at).total_seconds() / 86400, 1) for at in times]


async def test_clicks_past_retention_are_deleted_in_batches(store: Store) -> None:
    add_clicks(store, [400, 200, 120, 100, 95, 91, 90.5, 89.5, 30, 1, 0])
    deletes: list[str] = []

    def record(*args: object) -> None:
        if str(args[2]).lstrip().upper().startswith("DELETE"):
            deletes.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        deleted = await prune_clicks(store, 90, batch=3, pause=0, now=NOW)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert deleted == 7
    assert len(deletes) == 3  # 3 + 3 + 1
    assert click_ages(store) == [89.5, 30, 1, 0]
    assert await prune_clicks(store, 90, batch=3, pause=0, now=NOW) == 0


async def test_a_retention_of_zero_keeps_every_click(store: Store) -> None:
    add_clicks(store, [4000, 1])
    await keep_clicks_pruned(store, 0, asyncio.Event())
    assert click_ages(store) == [4000, 1]


def test_a_worker_process_prunes_old_clicks(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "master_key": generate_master_key("retention"),
            "cname_targets": ("edge.platform.test",),
            "click_retention_days": 30,
        }
    )
    store = Store(settings.effective_database_url)
    store.migrate()
    now = datetime.now(UTC)
    with store.session() as session:
        session.execute(
            insert(Click),
            [
                {"domain": DOMAIN, "link_id": n, "kind": "click", "at": now - timedelta(days=age)}
                for n, age in enumerate([365, 60, 31, 29, 1])
            ],
        )
    process = Process("worker", settings_env(settings), tmp_path, "worker")
    try:
        deadline = time.monotonic() + 60
        while True:
            with store.session() as session:
                left = session.scalar(select(func.count()).select_from(Click))
            if left == 2:
                break
            assert process.popen.poll() is None, process.output()[-3000:]
            assert time.monotonic() < deadline, f"{left} clicks left"
            time.sleep(0.1)
    finally:
        code = process.stop()
    with store.session() as session:
        assert sorted(session.scalars(select(Click.link_id)).all()) == [3, 4]
    store.close()
    output = process.output()
    assert code == 0, output[-3000:]
    assert "deleted 3 clicks" in output, output[-3000:]
