"""HTTP/1.x handling on the edge: keep-alive, pipelining, HTTP/1.0, limits, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from linkcert.edge import CertificateCache, Edge, EdgeSettings
from linkcert.edge.listen import parse_address
from linkcert.tracking import Click
from tests.edge_support import (
    close_writer,
    exchange,
    get,
    read_response,
    read_until_closed,
    running_edge,
)

DOMAIN = "links.shop.test"


async def test_several_requests_on_one_keep_alive_connection() -> None:
    async with running_edge() as env:
        reader, writer = await env.open_http()
        try:
            for link_id in range(5):
                token = env.token(DOMAIN, link_id, f"https://shop.example/{link_id}")
                writer.write(get(f"/c/{token}", DOMAIN))
                response = await read_response(reader)
                assert response.status == 302
                assert response.header("location") == f"https://shop.example/{link_id}"
                assert response.header("connection") is None
        finally:
            await close_writer(writer)
        assert env.edge.counters.connections_accepted == 1
    assert [click.link_id for click in env.clicks] == [0, 1, 2, 3, 4]


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with running_edge() as env:
        env.challenges["slow"] = "slow.thumb"
        tokens = [env.token(DOMAIN, n, f"https://shop.example/{n}") for n in range(4)]
        requests = [
            get(f"/c/{tokens[0]}", DOMAIN),
            get("/healthz", DOMAIN),
            get("/.well-known/acme-challenge/slow", DOMAIN),  # answered after an await
            get(f"/c/{tokens[1]}", DOMAIN, method="HEAD"),
            get("/nothing-here", DOMAIN),
            get(f"/c/{tokens[2]}", DOMAIN),
            get("/.well-known/acme-challenge/missing", DOMAIN),
            get(f"/c/{tokens[3]}", DOMAIN, extra="Connection: close\r\n"),
        ]
        reader, writer = await env.open_http()
        try:
            writer.write(b"".join(requests))
            answers = [
                await read_response(reader, head=request.startswith(b"HEAD"))
                for request in requests
            ]
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)
    assert [a.status for a in answers] == [302, 200, 200, 302, 404, 302, 404, 302]
    assert answers[2].body == b"slow.thumb"
    assert answers[3].header("location") == "https://shop.example/1"
    assert answers[5].header("location") == "https://shop.example/2"
    assert answers[7].header("connection") == "close"


async def test_pipelined_requests_split_across_reads() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 9)
        data = get(f"/c/{token}", DOMAIN) * 3
        reader, writer = await env.open_http()
        try:
            for start in range(0, len(data), 7):  # a few bytes at a time
                writer.write(data[start : start + 7])
                await writer.drain()
            statuses = [(await read_response(reader)).status for _ in range(3)]
        finally:
            await close_writer(writer)
        assert statuses == [302, 302, 302]


async def test_http_1_0_without_keep_alive_closes_after_the_response() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 3)
        reader, writer = await env.open_http()
        try:
            writer.write(f"GET /c/{token} HTTP/1.0\r\nHost: {DOMAIN}\r\n\r\n".encode())
            response = await read_response(reader)
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)
        assert response.status == 302
        assert response.header("connection") == "close"


async def test_http_1_0_with_keep_alive_is_told_the_connection_stays() -> None:
    async with running_edge() as env:
        reader, writer = await env.open_http()
        try:
            for _ in range(2):
                writer.write(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                response = await read_response(reader)
                assert response.status == 200
                assert response.header("connection") == "keep-alive"
        finally:
            await close_writer(writer)


async def test_http_1_0_without_host_cannot_follow_a_tracked_link() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN)
        response = await env.http(f"GET /c/{token} HTTP/1.0\r\n\r\n".encode())
        assert response.status == 400


async def test_http_1_1_without_host_is_a_bad_request() -> None:
    async with running_edge() as env:
        response = await env.http(get("/healthz", None))
        assert response.status == 400
        assert response.header("connection") == "close"


async def test_two_host_headers_are_a_bad_request() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN)
        response = await env.http(get(f"/c/{token}", DOMAIN, extra="Host: other.test\r\n"))
        assert response.status == 400


async def test_oversized_headers_get_431_and_the_connection_closes() -> None:
    async with running_edge() as env:
        reader, writer = await env.open_http()
        try:
            writer.write(get("/healthz", DOMAIN, extra=f"X-Filler: {'a' * 17_000}\r\n"))
            response = await read_response(reader)
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)
        assert response.status == 431
        assert response.header("connection") == "close"


async def test_oversized_header_sent_slowly_without_end_gets_431() -> None:
    async with running_edge() as env:
        reader, writer = await env.open_http()
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x.test\r\nX-Filler: ")
            for _ in range(40):  # a header that never ends, 1 KiB at a time
                await asyncio.sleep(0.002)
                writer.write(b"a" * 1024)
            response = await read_response(reader)
        finally:
            await close_writer(writer)
        assert response.status == 431


async def test_long_url_gets_431() -> None:
    async with running_edge() as env:
        response = await env.http(get("/c/" + "A" * 20_000, DOMAIN))
        assert response.status == 431


async def test_request_bodies_beyond_the_limit_get_413() -> None:
    async with running_edge() as env:
        body = b"x" * 5000
        request = (
            f"POST /c/abc HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        response = await env.http(request)
        assert response.status == 413


async def test_small_body_is_read_and_the_method_refused() -> None:
    async with running_edge() as env:
        reader, writer = await env.open_http()
        try:
            writer.write(
                f"POST /c/abc HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: 5\r\n\r\nhello".encode()
                + get("/healthz", DOMAIN)
            )
            refused = await read_response(reader)
            healthy = await read_response(reader)
        finally:
            await close_writer(writer)
        assert refused.status == 405
        assert refused.header("allow") == "GET, HEAD"
        assert healthy.status == 200


async def test_garbage_gets_400_and_close() -> None:
    async with running_edge() as env:
        reader, writer = await env.open_http()
        try:
            writer.write(b"\x16\x03\x01 this is not http\r\n\r\n")
            response = await read_response(reader)
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)
        assert response.status == 400


async def test_idle_connection_is_closed_after_the_idle_timeout() -> None:
    async with running_edge(idle_timeout=0.2, sweep_interval=0.05) as env:
        reader, writer = await env.open_http()
        try:
            writer.write(get("/healthz", DOMAIN))
            assert (await read_response(reader)).status == 200
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)


async def test_stalled_request_gets_408() -> None:
    async with running_edge(request_timeout=0.2, sweep_interval=0.05) as env:
        reader, writer = await env.open_http()
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x")
            response = await read_response(reader)
        finally:
            await close_writer(writer)
        assert response.status == 408
        assert env.edge.counters.request_timeouts == 1


async def test_stalled_tls_handshake_is_dropped() -> None:
    async with running_edge(handshake_timeout=0.2, sweep_interval=0.05) as env:
        reader, writer = await asyncio.open_connection("127.0.0.1", env.https_port)
        try:
            writer.write(b"\x16\x03\x01")  # the start of a ClientHello, and no more
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)
        assert env.edge.counters.handshakes_failed["timeout"] == 1


async def test_graceful_close_finishes_requests_in_flight() -> None:
    lookup_started = asyncio.Event()
    release_lookup = asyncio.Event()

    async def slow_lookup(token: str) -> str | None:
        lookup_started.set()
        await release_lookup.wait()
        return f"{token}.thumb"

    clicks: list[Click] = []
    edge = Edge(
        tracking_key=b"k" * 32,
        certificates=CertificateCache(),
        challenge_lookup=slow_lookup,
        click_sink=clicks.extend,
        settings=EdgeSettings(http="127.0.0.1:0"),
    )
    await edge.start()
    assert edge.http_port is not None and edge.https_port is None
    busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
    idle_writer.write(get("/healthz", DOMAIN))
    assert (await read_response(idle_reader)).status == 200
    busy_writer.write(get("/.well-known/acme-challenge/tok", DOMAIN))
    await lookup_started.wait()

    closing = asyncio.create_task(edge.aclose())
    assert await read_until_closed(idle_reader) == b""  # the idle one is closed at once
    with pytest.raises(OSError):
        await exchange(edge.http_port, get("/healthz", DOMAIN))  # no longer accepting
    release_lookup.set()
    answer = await read_response(busy_reader)
    assert (answer.status, answer.body) == (200, b"tok.thumb")
    assert answer.header("connection") == "close"
    await closing
    await close_writer(busy_writer)
    await close_writer(idle_writer)
    assert edge.open_connections == 0


async def test_listening_on_a_given_socket_and_sharing_a_port() -> None:
    given = socket.create_server(("127.0.0.1", 0))
    port = given.getsockname()[1]
    edge = Edge(
        tracking_key=b"k" * 32,
        certificates=CertificateCache(),
        challenge_lookup=_no_challenge,
        click_sink=lambda clicks: None,
        settings=EdgeSettings(http=given),
    )
    async with edge:
        assert edge.http_port == port
        assert (await exchange(port, get("/healthz", DOMAIN))).status == 200

    # Two edges on one port, as two worker processes would be.
    first = _port_sharing_edge("127.0.0.1:0")
    await first.start()
    assert first.http_port is not None
    second = _port_sharing_edge(f"127.0.0.1:{first.http_port}")
    await second.start()
    try:
        assert second.http_port == first.http_port
        assert (await exchange(first.http_port, get("/healthz", DOMAIN))).status == 200
    finally:
        await second.aclose()
        await first.aclose()


def _port_sharing_edge(address: str) -> Edge:
    return Edge(
        tracking_key=b"k" * 32,
        certificates=CertificateCache(),
        challenge_lookup=_no_challenge,
        click_sink=lambda clicks: None,
        settings=EdgeSettings(http=address, reuse_port=True),
    )


async def _no_challenge(token: str) -> str | None:
    return None


def test_listen_addresses() -> None:
    assert parse_address("0.0.0.0:443") == ("0.0.0.0", 443)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    assert parse_address(":80") == ("", 80)
    for wrong in ("443", "host:", "::1:80", "host:99999", "host:http"):
        with pytest.raises(ValueError, match=r"host:port|brackets"):
            parse_address(wrong)


def test_an_edge_needs_a_listener() -> None:
    with pytest.raises(ValueError, match="listen address"):
        Edge(
            tracking_key=b"k" * 32,
            certificates=CertificateCache(),
            challenge_lookup=_no_challenge,
            click_sink=lambda clicks: None,
            settings=EdgeSettings(),
        )


async def test_error_after_a_waiting_request_comes_after_its_answer() -> None:
    release = asyncio.Event()

    async def slow_lookup(token: str) -> str | None:
        await release.wait()
        return "slow.thumb"

    async with running_edge(challenge_lookup=slow_lookup) as env:
        reader, writer = await env.open_http()
        try:
            writer.write(
                get("/.well-known/acme-challenge/slow", DOMAIN)
                + get("/healthz", DOMAIN)
                + b"NOT HTTP AT ALL\r\n\r\n"
            )
            await asyncio.sleep(0.05)
            release.set()
            answers = [await read_response(reader) for _ in range(3)]
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)
        assert [a.status for a in answers] == [200, 200, 400]
        assert answers[0].body == b"slow.thumb"


async def test_upgrade_requests_are_answered_then_closed() -> None:
    async with running_edge() as env:
        reader, writer = await env.open_http()
        try:
            writer.write(
                get("/healthz", DOMAIN, extra="Connection: Upgrade\r\nUpgrade: websocket\r\n")
            )
            response = await read_response(reader)
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)
        assert response.status == 200


async def test_client_half_close_still_gets_its_answers() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 2)
        reader, writer = await env.open_http()
        try:
            writer.write(get(f"/c/{token}", DOMAIN) + get("/healthz", DOMAIN))
            writer.write_eof()
            first, second = await read_response(reader), await read_response(reader)
            assert await read_until_closed(reader) == b""
        finally:
            await close_writer(writer)
        assert (first.status, second.status) == (302, 200)


async def test_shutdown_closes_idle_tls_connections_cleanly() -> None:
    async with running_edge() as env:
        env.add_domain(DOMAIN)
        reader, writer = await env.open_https(DOMAIN)
        writer.write(get("/healthz", DOMAIN))
        assert (await read_response(reader)).status == 200
        await env.edge.aclose()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # close_notify, not a reset
        await close_writer(writer)
        assert env.edge.open_connections == 0


async def test_shutdown_answers_a_connection_whose_first_request_is_on_its_way() -> None:
    async with running_edge(shutdown_timeout=5) as env:
        # Connected, nothing sent yet: a client that is about to send its click.
        reader, writer = await asyncio.open_connection("127.0.0.1", env.http_port)
        await _until(lambda: env.edge.open_connections == 1)
        closing = asyncio.create_task(env.edge.aclose())
        await asyncio.sleep(0.2)
        assert not closing.done()  # waiting for that request
        writer.write(get("/healthz", DOMAIN))
        answer = await read_response(reader)
        assert answer.status == 200
        assert answer.header("connection") == "close"
        assert await read_until_closed(reader) == b""
        await closing
        await close_writer(writer)


async def test_shutdown_lets_a_tls_handshake_in_progress_finish() -> None:
    async with running_edge(shutdown_timeout=5) as env:
        env.add_domain(DOMAIN)
        raw_reader, raw_writer = await asyncio.open_connection("127.0.0.1", env.https_port)
        await _until(lambda: env.edge.open_connections == 1)
        closing = asyncio.create_task(env.edge.aclose())
        await asyncio.sleep(0.2)
        # The handshake starts only now, on the connection accepted before the shutdown.
        await raw_writer.start_tls(env.authority.client_context(), server_hostname=DOMAIN)
        raw_writer.write(get("/healthz", DOMAIN))
        answer = await read_response(raw_reader)
        assert (answer.status, answer.header("connection")) == (200, "close")
        await closing
        await close_writer(raw_writer)
        assert env.edge.counters.handshakes_completed == 1


async def test_shutdown_gives_up_on_a_silent_connection_after_the_timeout() -> None:
    async with running_edge(shutdown_timeout=0.5) as env:
        _reader, writer = await asyncio.open_connection("127.0.0.1", env.http_port)
        await _until(lambda: env.edge.open_connections == 1)
        await asyncio.wait_for(env.edge.aclose(), 5)
        assert env.edge.open_connections == 0
        await close_writer(writer)


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_a_port_in_use_fails_start_with_the_os_error() -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        edge = Edge(
            tracking_key=b"k" * 32,
            certificates=CertificateCache(),
            challenge_lookup=_no_challenge,
            click_sink=lambda clicks: None,
            settings=EdgeSettings(http="127.0.0.1:0", https=f"127.0.0.1:{taken.getsockname()[1]}"),
        )
        with pytest.raises(OSError):
            await edge.start()
        with pytest.raises(RuntimeError, match="create a new one"):
            await edge.start()
        await edge.aclose()
    finally:
        taken.close()
