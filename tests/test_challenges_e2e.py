"""A flood of made-up ACME challenge requests never reaches the store, while a real validation by
Pebble succeeds at its first attempt.

On SQLite the worker and the edge share one process (`linkcert serve`); on PostgreSQL they are
two runtimes with stores of their own, as a worker and an edge machine are, the edge learning
of the order through the store's announcements. Every statement the edge's store runs is
recorded: none carries a flooded token or host.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from linkcert.domains import create_account, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Order, Store
from linkcert.testbed.waiting import wait_for_async
from tests.e2e_support import Platform, start_platform, wait_until_secured

pytestmark = pytest.mark.pebble

POLICY = NamePolicy(allow_test_domains=True)
FLOOD_CONNECTIONS = 8


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Any:
    world = start_platform(tmp_path_factory.mktemp("pebble"))
    yield world
    world.pebble.stop()
    world.dns.stop()


async def flood(port: int, number: int, sent: list[str], stop: asyncio.Event) -> None:
    """Made-up tokens, on made-up names and on no name, over one kept-alive connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        count = 0
        while not stop.is_set():
            token = f"floodtoken{number}x{count}"
            host = f"h{number}x{count}.flood.test" if count % 2 else f"floodhost{number}.test"
            sent.append(token)
            request = f"GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 404 "), head
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            count += 1
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_flood_of_unknown_tokens_reads_nothing_while_pebble_validates(
    platform: Platform, db_url: str, tmp_path: Path
) -> None:
    settings = platform.settings(db_url, tmp_path)
    shared_process = db_url.startswith("sqlite")
    edge_store = Store(db_url)
    edge_store.migrate()
    if shared_process:
        runtimes = [Runtime(settings, Roles(api=False), store=edge_store)]
        worker_store = edge_store
    else:
        worker_store = Store(db_url)
        runtimes = [
            Runtime(settings, Roles(worker=False, edge=True, api=False), store=edge_store),
            Runtime(settings, Roles(worker=True, edge=False, api=False), store=worker_store),
        ]
    edge_runtime = runtimes[0]
    parameters: list[str] = []

    def record(*args: object) -> None:
        parameters.append(repr(args[3]))

    event.listen(edge_store.engine, "before_cursor_execute", record)
    domain = f"links.{tmp_path.name.replace('_', '-')[-20:]}.flood.test".lower()
    sent: list[str] = []
    stop = asyncio.Event()
    floods: list[asyncio.Task[None]] = []
    try:
        for runtime in runtimes:
            await runtime.start()
        assert edge_runtime.edge is not None and edge_runtime.edge.http_port is not None
        port = edge_runtime.edge.http_port
        # Until the edge listens for the workers' announcements (PostgreSQL), it reads a name
        # it does not know rather than refuse it; from then on memory answers alone.
        book = edge_runtime.feeds.challenges
        await wait_for_async(lambda: book.announced, "the edge hearing every announcement")
        floods = [
            asyncio.create_task(flood(port, number, sent, stop))
            for number in range(FLOOD_CONNECTIONS)
        ]
        while len(sent) < 200:  # the flood is under way before the domain is saved
            await asyncio.sleep(0.01)
        create_account(worker_store, "flood")
        platform.point(domain, worker_store, "flood")
        set_tracking_domain(worker_store, "flood", domain, POLICY)
        runtimes[-1].wake()
        await wait_until_secured(worker_store, domain)
        stop.set()
        await asyncio.gather(*floods)
    finally:
        stop.set()
        for task in floods:
            task.cancel()
        await asyncio.gather(*floods, return_exceptions=True)
        for runtime in reversed(runtimes):
            await runtime.aclose()
        event.remove(edge_store.engine, "before_cursor_execute", record)
    counters = edge_runtime.edge.counters
    # Pebble's request was answered; the first validation succeeded (one order, no retry).
    assert counters.challenges_served >= 1
    check = Store(db_url)
    with check.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 1
    check.close()
    # Every flooded request was refused from memory, and not one reached the store.
    assert counters.challenges_unknown >= len(sent) - FLOOD_CONNECTIONS
    assert parameters, "the edge's statements were not recorded"
    flooded = re.compile(r"floodtoken\d|floodhost\d|h\d+x\d+\.flood\.test")
    assert [p for p in parameters if flooded.search(p)] == []
