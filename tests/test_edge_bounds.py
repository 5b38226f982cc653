"""The edge's bounds: a time for the first byte and the TLS handshake, and caps on connections per
process and per client address, over real sockets on loopback (127.0.0.0/8 gives several client
addresses)."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import textwrap
from collections.abc import Callable

from linkcert.config import Settings
from linkcert.edge.fdlimit import RESERVED_DESCRIPTORS, connection_budget
from linkcert.edge.http import address_key
from linkcert.service.runtime import edge_settings
from tests.edge_support import (
    EdgeUnderTest,
    close_writer,
    get,
    read_response,
    read_until_closed,
    running_edge,
)

DOMAIN = "links.shop.test"
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def open_from(env: EdgeUnderTest, address: str, *, expect_open: int) -> Connection:
    """A plain-HTTP connection from `address`, once the edge holds `expect_open` connections
    (so that the order in which the edge took them is the order they were opened in)."""
    connection = await asyncio.open_connection("127.0.0.1", env.http_port, local_addr=(address, 0))
    await until(lambda: env.edge.open_connections == expect_open, f"{expect_open} open")
    return connection


async def is_served(connection: Connection) -> bool:
    reader, writer = connection
    writer.write(get("/healthz", DOMAIN))
    return (await read_response(reader)).status == 200


async def closes(connection: Connection) -> bool:
    """Whether the edge closes the connection (it sends nothing before closing)."""
    return await read_until_closed(connection[0]) == b""


async def close_all(connections: list[Connection]) -> None:
    for _, writer in connections:
        await close_writer(writer)


async def test_silent_connections_are_closed_at_the_first_byte_limit() -> None:
    async with running_edge(
        first_byte_timeout=0.2, handshake_timeout=0.4, sweep_interval=0.05
    ) as env:
        good = await open_from(env, "127.0.0.1", expect_open=1)
        assert await is_served(good)
        silent_http = await open_from(env, "127.0.0.1", expect_open=2)
        silent_https = await asyncio.open_connection("127.0.0.1", env.https_port)
        slow_hello = await asyncio.open_connection("127.0.0.1", env.https_port)
        slow_hello[1].write(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        try:
            assert await closes(silent_http)
            assert await closes(silent_https)
            assert await closes(slow_hello)
            # A client that has spoken is not held to the first-byte limit: its kept-alive
            # connection waits for the idle timeout (60 s here).
            await until(lambda: env.edge.open_connections == 1, "only the good client left")
            assert await is_served(good)
        finally:
            await close_all([good, silent_http, silent_https, slow_hello])
        closed = env.edge.counters.connections_closed
        assert closed["first_byte_timeout"] == 2
        assert closed["handshake_timeout"] == 1
        assert env.edge.counters.handshakes_failed["timeout"] == 2


async def test_one_address_over_its_cap_gives_up_its_oldest_idle_connection() -> None:
    async with running_edge(max_connections_per_address=3, first_byte_timeout=60) as env:
        mine = [await open_from(env, "127.0.0.1", expect_open=n) for n in (1, 2, 3)]
        assert await is_served(mine[2])  # spoken to and idle again: idle since the latest
        newest = await asyncio.open_connection(
            "127.0.0.1", env.http_port, local_addr=("127.0.0.1", 0)
        )
        others = [await open_from(env, "127.0.0.2", expect_open=n) for n in (4, 5, 6)]
        try:
            assert await closes(mine[0])
            assert await is_served(newest)
            assert await is_served(mine[1]) and await is_served(mine[2])
            # Another address has its own count: nothing of it was closed.
            for connection in others:
                assert await is_served(connection)
        finally:
            await close_all([*mine, newest, *others])
        assert env.edge.counters.connections_closed["address_cap"] == 1
        assert env.edge.counters.connections_refused["address_cap"] == 0


async def test_one_address_with_every_connection_busy_is_refused_another() -> None:
    async with running_edge(max_connections_per_address=2, first_byte_timeout=60) as env:
        busy = [await open_from(env, "127.0.0.3", expect_open=n) for n in (1, 2)]
        for _, writer in busy:
            writer.write(b"GET /healthz HTTP/1.1\r\n")  # a request on its way
        await asyncio.sleep(0.1)
        refused = await asyncio.open_connection(
            "127.0.0.1", env.http_port, local_addr=("127.0.0.3", 0)
        )
        elsewhere = await open_from(env, "127.0.0.4", expect_open=3)
        try:
            assert await closes(refused)
            for reader, writer in busy:
                writer.write(f"Host: {DOMAIN}\r\n\r\n".encode())
                assert (await read_response(reader)).status == 200
            assert await is_served(elsewhere)
        finally:
            await close_all([*busy, refused, elsewhere])
        assert env.edge.counters.connections_refused["address_cap"] == 1
        assert env.edge.counters.connections_closed["address_cap"] == 0


async def test_a_full_process_closes_its_oldest_idle_connection_or_refuses() -> None:
    async with running_edge(max_connections=3, first_byte_timeout=60) as env:
        idle = [await open_from(env, f"127.0.1.{n}", expect_open=n) for n in (1, 2, 3)]
        newcomer = await asyncio.open_connection(
            "127.0.0.1", env.http_port, local_addr=("127.0.1.4", 0)
        )
        try:
            assert await closes(idle[0])
            assert await is_served(newcomer)
            assert await is_served(idle[1])
            # Now every connection has a request on its way: nothing can make room.
            for _, writer in (newcomer, idle[1], idle[2]):
                writer.write(b"GET /healthz HTTP/1.1\r\n")
            await asyncio.sleep(0.1)
            refused = await asyncio.open_connection(
                "127.0.0.1", env.http_port, local_addr=("127.0.1.5", 0)
            )
            assert await closes(refused)
            for reader, writer in (newcomer, idle[1], idle[2]):
                writer.write(f"Host: {DOMAIN}\r\n\r\n".encode())
                assert (await read_response(reader)).status == 200
        finally:
            await close_all([*idle, newcomer])
        assert env.edge.counters.connections_closed["process_cap"] == 1
        assert env.edge.counters.connections_refused["process_cap"] == 1


async def test_an_idle_tls_connection_gives_way_with_close_notify() -> None:
    async with running_edge(max_connections_per_address=1, first_byte_timeout=60) as env:
        env.add_domain(DOMAIN)
        reader, writer = await env.open_https(DOMAIN)
        try:
            writer.write(get("/healthz", DOMAIN))
            assert (await read_response(reader)).status == 200
            second = await env.open_https(DOMAIN)
            # The first ends cleanly (close_notify: a clean EOF, not a TLS error).
            assert await read_until_closed(reader) == b""
            second[1].write(get("/healthz", DOMAIN))
            assert (await read_response(second[0])).status == 200
            await close_writer(second[1])
        finally:
            await close_writer(writer)
        assert env.edge.counters.connections_closed["address_cap"] == 1


def test_addresses_are_counted_per_ipv4_address_and_per_ipv6_64() -> None:
    assert address_key(("192.0.2.7", 5555)) == "192.0.2.7"
    assert address_key(("::ffff:192.0.2.7", 5555, 0, 0)) == "192.0.2.7"
    assert address_key(("2001:db8:1:2::1", 1, 0, 0)) == address_key(("2001:db8:1:2:ff::9", 1, 0, 0))
    assert address_key(("2001:db8:1:2::1", 1, 0, 0)) != address_key(("2001:db8:1:3::1", 1, 0, 0))
    assert address_key(None) is None  # a UNIX socket, say


def test_the_connection_bound_stays_under_the_open_file_limit() -> None:
    assert connection_budget(20_000, 1_048_576) == 20_000
    assert connection_budget(20_000, 4096) == 4096 - RESERVED_DESCRIPTORS
    assert connection_budget(0, 65_536) == 65_536 - RESERVED_DESCRIPTORS


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(256, soft)
    script = textwrap.dedent(
        f"""
        import resource
        from linkcert.edge.fdlimit import raise_open_file_limit
        resource.setrlimit(resource.RLIMIT_NOFILE, ({lowered}, {hard}))
        now = raise_open_file_limit()
        print(now, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        """
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    expected = hard if hard != resource.RLIM_INFINITY else int(output[1])
    assert [int(value) for value in output] == [expected, expected]
    assert expected > lowered


def test_the_settings_reach_the_edge() -> None:
    settings = Settings(
        edge_first_byte_timeout=2,
        edge_handshake_timeout=7,
        edge_idle_timeout=30,
        edge_max_connections=1000,
        edge_max_connections_per_address=9,
        click_repeat_limit=5,
        click_repeat_window_seconds=30,
    )
    edge = edge_settings(settings, "127.0.0.1:0", None, share_ports=True)
    assert (edge.first_byte_timeout, edge.handshake_timeout, edge.idle_timeout) == (2, 7, 30)
    assert (edge.max_connections, edge.max_connections_per_address) == (1000, 9)
    assert (edge.click_repeat_limit, edge.click_repeat_window) == (5, 30)
    assert Settings().click_repeat_limit == 60 and Settings().edge_first_byte_timeout == 5
