"""Proxy mode against real origins on loopback: nginx, and a Python origin for faults."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from linkcert.edge import ProxySettings
from linkcert.edge.proxy import EdgeMode
from linkcert.edge.upstream import PoolSettings, parse_origin
from linkcert.testbed.waiting import wait_for_async
from tests.edge_support import EdgeUnderTest, TestAuthority, close_writer, running_edge
from tests.proxy_support import (
    fault_origin,
    nginx_origin,
    read_reply,
    refused_origin,
)

DOMAIN = "links.shop.test"
OTHER = "links.other.test"


@contextlib.asynccontextmanager
async def proxy_edge(
    *origins: str,
    mode: EdgeMode = "proxy",
    pool: PoolSettings | None = None,
    edge: dict[str, Any] | None = None,
    **proxy: Any,
) -> AsyncIterator[EdgeUnderTest]:
    settings = ProxySettings(
        mode=mode,
        upstreams=tuple(parse_origin(origin) for origin in origins),
        pool=pool or PoolSettings(),
        **proxy,
    )
    async with running_edge(proxy=settings, **(edge or {})) as env:
        env.add_domain(DOMAIN)
        yield env


def request(path: str, host: str = DOMAIN, *, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


async def one(env: EdgeUnderTest, data: bytes, *, secure: bool = False, head: bool = False) -> Any:
    if secure:
        reader, writer = await env.open_https(DOMAIN)
    else:
        reader, writer = await env.open_http()
    try:
        writer.write(data)
        return await read_reply(reader, head=head)
    finally:
        await close_writer(writer)


def origin_stats(env: EdgeUnderTest) -> dict[str, Any]:
    assert env.edge.proxy is not None
    return {origin.label: origin for origin in env.edge.proxy.registry.origins}


# --- what the origin receives ------------------------------------------------------------------


@pytest.mark.nginx
async def test_the_origin_gets_host_forwarding_fields_and_via_and_no_hop_by_hop(
    tmp_path: Path,
) -> None:
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(nginx.url) as env:
            reply = await one(
                env,
                request(
                    "/echo",
                    extra="X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
                    "X-Forwarded-Proto: http\r\nX-Forwarded-Host: evil.test\r\n"
                    "X-Real-IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\n"
                    "Keep-Alive: timeout=5\r\nTE: trailers\r\n"
                    "Connection: keep-alive, X-Private\r\nX-Private: secret\r\n"
                    "X-Custom: kept\r\n",
                ),
                secure=True,
            )
    assert reply.status == 200
    seen = reply.fields
    assert seen["host"] == DOMAIN
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["forwarded"] == f'for=127.0.0.1;host="{DOMAIN}";proto=https'
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == DOMAIN
    assert seen["x-real-ip"] == ""
    assert seen["via"] == "1.1 linkcert"
    # Hop-by-hop fields, and the one the client named in Connection, stop at the edge.
    assert seen["keep-alive"] == seen["te"] == seen["x-private"] == seen["connection"] == ""
    assert seen["x-custom"] == "kept"
    assert seen["request"] == "GET /echo HTTP/1.1"
    assert reply.header("via") == "1.1 linkcert"
    assert reply.header(
        "server",
    ) is not None and reply.header("server").startswith("nginx")


@pytest.mark.nginx
async def test_a_trusted_proxys_forwarding_fields_are_kept_and_extended(tmp_path: Path) -> None:
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(nginx.url, trusted_proxies=("127.0.0.0/8",)) as env:
            reply = await one(
                env,
                request(
                    "/echo",
                    extra="X-Forwarded-For: 203.0.113.7\r\nForwarded: for=203.0.113.7\r\n"
                    "X-Forwarded-Proto: https\r\nX-Real-IP: 203.0.113.7\r\n",
                ),
            )
    seen = reply.fields
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert seen["forwarded"] == f'for=203.0.113.7, for=127.0.0.1;host="{DOMAIN}";proto=http'
    assert seen["x-forwarded-proto"] == "https"  # the load balancer's word
    assert seen["x-real-ip"] == "203.0.113.7"


@pytest.mark.nginx
async def test_an_untrusted_peer_is_not_a_trusted_proxy(tmp_path: Path) -> None:
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(nginx.url, trusted_proxies=("10.0.0.0/8",)) as env:
            reply = await one(env, request("/echo", extra="X-Forwarded-For: 10.1.1.1\r\n"))
    assert reply.fields["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.nginx
async def test_a_redirect_from_the_origin_reaches_the_client_as_sent(tmp_path: Path) -> None:
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(nginx.url) as env:
            reply = await one(env, request("/track"))
            assert env.edge.counters.proxied_requests == 1
    assert reply.status == 302
    assert reply.header("location") == "https://shop.example/landing"


# --- bodies, streamed --------------------------------------------------------------------------


@pytest.mark.nginx
async def test_a_10_mb_response_streams_through(tmp_path: Path) -> None:
    with nginx_origin(tmp_path) as nginx:
        payload = os.urandom(10 * 1024 * 1024)
        (nginx.prefix / "www" / "files" / "big.bin").write_bytes(payload)
        async with proxy_edge(nginx.url) as env:
            reader, writer = await env.open_https(DOMAIN)
            try:
                writer.write(request("/files/big.bin"))
                reply = await read_reply(reader)
                # The connection stays usable after it.
                writer.write(request("/track"))
                after = await read_reply(reader)
            finally:
                await close_writer(writer)
    assert reply.status == 200
    assert reply.header("content-length") == str(len(payload))
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(payload).digest()
    assert after.status == 302


async def test_a_chunked_request_body_reaches_the_origin_whole() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        parts = [os.urandom(size) for size in (1, 1000, 70_000, 3)]
        chunked = b"".join(b"%x;ext=1\r\n%b\r\n" % (len(part), part) for part in parts)
        reader, writer = await env.open_http()
        try:
            writer.write(request("/upload", method="POST", extra="Transfer-Encoding: chunked\r\n"))
            for start in range(0, len(chunked), 5000):
                writer.write(chunked[start : start + 5000])
                await writer.drain()
            writer.write(b"0\r\nX-Trailer: no\r\n\r\n")
            reply = await read_reply(reader)
        finally:
            await close_writer(writer)
    assert reply.status == 200
    assert reply.body == b"".join(parts)
    seen = origin.requests[0]
    assert seen.header("transfer-encoding") == "chunked"
    assert seen.header("content-length") is None
    assert b"X-Trailer" not in seen.raw_head


async def test_a_request_body_with_a_length_is_passed_with_that_length() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        body = os.urandom(300_000)
        reply = await one(
            env,
            request("/upload", method="PUT", extra=f"Content-Length: {len(body)}\r\n") + body,
        )
    assert reply.body == body
    assert origin.requests[0].header("content-length") == str(len(body))


async def test_expect_100_continue_is_answered_by_the_edge() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        reader, writer = await env.open_http()
        try:
            writer.write(
                request(
                    "/upload", method="POST", extra="Content-Length: 5\r\nExpect: 100-continue\r\n"
                )
            )
            interim = await read_reply(reader)
            writer.write(b"hello")
            reply = await read_reply(reader)
        finally:
            await close_writer(writer)
    assert interim.status == 100
    assert reply.body == b"hello"
    assert origin.requests[0].header("expect") is None


# --- limits --------------------------------------------------------------------------------


async def test_a_body_over_the_limit_gets_413_and_is_never_forwarded() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url, max_body_bytes=1000) as env:
        declared = await one(env, request("/u", method="POST", extra="Content-Length: 1001\r\n"))
        reader, writer = await env.open_http()
        try:
            writer.write(request("/u", method="POST", extra="Transfer-Encoding: chunked\r\n"))
            writer.write(b"3e9\r\n" + b"x" * 1001 + b"\r\n0\r\n\r\n")
            streamed = await read_reply(reader)
        finally:
            await close_writer(writer)
    assert declared.status == streamed.status == 413
    assert origin.connections <= 1  # the chunked one may have begun; its body never ended
    assert all(seen.body == b"" for seen in origin.requests)


async def test_headers_and_request_line_over_their_limits_get_431_and_414() -> None:
    async with (
        fault_origin() as origin,
        proxy_edge(origin.url, max_request_line_bytes=100, edge={"max_header_bytes": 2000}) as env,
    ):
        long_line = await one(env, request("/" + "a" * 200))
        big_head = await one(env, request("/", extra="X-Big: " + "b" * 3000 + "\r\n"))
    assert long_line.status == 414
    assert big_head.status == 431
    assert origin.connections == 0


# --- keep-alive to the origin --------------------------------------------------------------


@pytest.mark.nginx
async def test_origin_connections_are_reused(tmp_path: Path) -> None:
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(nginx.url) as env:
            seen = set()
            for _ in range(3):  # three client connections, one after the other
                reader, writer = await env.open_http()
                try:
                    for _ in range(5):
                        writer.write(request("/connection"))
                        reply = await read_reply(reader)
                        seen.add(reply.header("x-connection"))
                finally:
                    await close_writer(writer)
            origin = origin_stats(env)[nginx.url]
            assert origin.open == 1
            assert origin.idle == 1
    assert len(seen) == 1


@pytest.mark.nginx
async def test_the_pool_is_bounded_and_requests_wait_for_a_connection(tmp_path: Path) -> None:
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(nginx.url, pool=PoolSettings(max_connections=2)) as env:
            replies = await asyncio.gather(*(one(env, request("/connection")) for _ in range(12)))
            origin = origin_stats(env)[nginx.url]
            assert origin.open <= 2
    assert {reply.status for reply in replies} == {200}
    assert len({reply.header("x-connection") for reply in replies}) <= 2


# --- failures ------------------------------------------------------------------------------


@pytest.mark.nginx
async def test_a_down_origin_is_skipped_and_left_out(tmp_path: Path) -> None:
    down = refused_origin()
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(down, nginx.url) as env:
            replies = [await one(env, request("/track")) for _ in range(6)]
            stats = origin_stats(env)
            assert stats[down].stats.failures["refused"] >= 1
            assert stats[down].stats.failures["refused"] <= 2  # then left out for a while
            assert not stats[down].healthy(time.monotonic())
    assert [reply.status for reply in replies] == [302] * 6


async def test_all_origins_down_gives_a_502_page() -> None:
    async with proxy_edge(refused_origin(), refused_origin()) as env:
        reply = await one(env, request("/track"))
        assert env.edge.counters.responses_by_status[502] == 1
        failures = sum(o.stats.failures["refused"] for o in origin_stats(env).values())
    assert reply.status == 502
    assert reply.header("content-type") == "text/html; charset=utf-8"
    assert b"not answering" in reply.body
    assert failures == 2  # the request, and its one retry on the other origin


async def test_a_post_is_not_retried_on_another_origin() -> None:
    async with fault_origin() as origin:
        down = refused_origin()
        async with proxy_edge(down, origin.url) as env:
            reply = await one(
                env, request("/u", method="POST", extra="Content-Length: 2\r\n") + b"hi"
            )
    assert reply.status == 502
    assert origin.requests == []


async def test_a_reset_gives_502_and_a_slow_origin_504() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url, first_byte_timeout=0.3) as env:
        reset = await one(env, request("/reset", method="DELETE"))
        slow = await one(env, request("/slow", method="DELETE"))
        stats = origin_stats(env)[origin.url].stats
    assert reset.status == 502
    assert slow.status == 504
    assert b"too long" in slow.body
    assert stats.failures["reset"] == 1
    assert stats.failures["timeout"] == 1


async def test_a_get_that_times_out_is_tried_once_on_the_other_origin() -> None:
    async with (
        fault_origin() as slow,
        fault_origin() as fine,
        proxy_edge(slow.url, fine.url, first_byte_timeout=0.3) as env,
    ):
        reply = await one(env, request("/slow"))
    # The second origin got the retry and answered /slow... by never answering either.
    assert reply.status == 504
    assert len(slow.requests) == len(fine.requests) == 1


@pytest.mark.nginx
async def test_consecutive_5xx_take_an_origin_out(tmp_path: Path) -> None:
    with nginx_origin(tmp_path) as nginx:
        async with fault_origin() as failing:
            failing.answer_status = 500
            async with proxy_edge(failing.url, nginx.url) as env:
                statuses = [(await one(env, request("/track"))).status for _ in range(8)]
    # 5xx answers are passed on (never retried), until the origin is left out.
    assert statuses.count(500) == 2
    assert statuses.count(302) == 6


async def test_a_client_that_goes_away_mid_stream_closes_the_origin_connection() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        reader, writer = await env.open_https(DOMAIN)
        writer.write(request("/endless"))
        received = 0
        while received < 1_000_000:
            received += len(await reader.read(65536))
        writer.transport.abort()
        async with asyncio.timeout(10):
            await origin.endless_ended.wait()
            while origin.open_connections or origin_stats(env)[origin.url].open:
                await asyncio.sleep(0.01)
        assert env.edge.open_connections == 0
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in tasks if "_connect" in repr(t.get_coro())]


# --- what is relayed, and what is not ------------------------------------------------------


async def test_a_name_linkcert_does_not_serve_is_never_relayed() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        plain = await one(env, request("/track", host=OTHER))
        absolute = await one(
            env, f"GET http://{OTHER}/track HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode()
        )
    assert plain.status == absolute.status == 404
    assert origin.connections == 0


async def test_challenges_and_health_are_answered_by_the_edge() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        env.challenges["tok"] = "tok.thumb"
        health = await one(env, request("/healthz"))
        challenge = await one(env, request("/.well-known/acme-challenge/tok"))
    assert (health.status, challenge.body) == (200, b"tok.thumb")
    assert origin.connections == 0


async def test_both_mode_answers_valid_links_itself_and_relays_the_rest() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url, mode="both") as env:
        token = env.token(DOMAIN, 7, "https://shop.example/seven")
        own = await one(env, request(f"/c/{token}"))
        pixel = await one(env, request(f"/o/{token}"))
        theirs = await one(env, request("/c/their-own-format-123"))
        other = await one(env, request("/l/abc?u=1"))
    assert own.status == 302 and own.header("location") == "https://shop.example/seven"
    assert pixel.header("content-type") == "image/gif"
    assert theirs.status == other.status == 200
    assert [seen.target for seen in origin.requests] == ["/c/their-own-format-123", "/l/abc?u=1"]
    assert len(env.clicks) == 2


async def test_proxy_mode_relays_linkcert_paths_too() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        token = env.token(DOMAIN, 7)
        reply = await one(env, request(f"/c/{token}"))
    assert reply.status == 200
    assert origin.requests[0].target == f"/c/{token}"


async def test_an_account_of_its_own_origins_gets_its_names_relayed_there() -> None:
    async with fault_origin() as regional, fault_origin() as default:
        settings = ProxySettings(mode="proxy", upstreams=(parse_origin(default.url),))
        table = {OTHER: (parse_origin(regional.url),)}
        async with running_edge(proxy=settings) as env:
            env.edge.proxy.account_upstreams = table.get  # type: ignore[union-attr]
            env.add_domain(DOMAIN)
            env.add_domain(OTHER)
            mine = await one(env, request("/x", host=OTHER))
            theirs = await one(env, request("/y", host=DOMAIN))
    assert mine.header("x-origin-port") == str(regional.port)
    assert theirs.header("x-origin-port") == str(default.port)


@pytest.mark.nginx
async def test_head_and_pipelined_requests_keep_their_order(tmp_path: Path) -> None:
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(nginx.url) as env:
            reader, writer = await env.open_http()
            try:
                writer.write(
                    request("/track")
                    + request("/echo", method="HEAD")
                    + request("/healthz")
                    + request("/error")
                    + request("/echo", extra="Connection: close\r\n")
                )
                replies = [
                    await read_reply(reader),
                    await read_reply(reader, head=True),
                    await read_reply(reader),
                    await read_reply(reader),
                    await read_reply(reader),
                ]
                assert await reader.read() == b""
            finally:
                await close_writer(writer)
    assert [reply.status for reply in replies] == [302, 200, 200, 503, 200]
    assert replies[2].body == b"ok\n"
    assert replies[4].header("connection") == "close"
    assert replies[4].fields["request"] == "GET /echo HTTP/1.1"


async def test_http_1_0_clients_get_a_close_delimited_body_when_the_length_is_unknown() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        reader, writer = await env.open_http()
        try:
            writer.write(f"GET /endless HTTP/1.0\r\nHost: {DOMAIN}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(100_000)
        finally:
            writer.transport.abort()
    assert b"Transfer-Encoding" not in head
    assert b"Connection: close" in head


@pytest.mark.nginx
async def test_per_origin_metrics(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from linkcert import metrics

    down = refused_origin()
    with nginx_origin(tmp_path) as nginx:
        async with proxy_edge(down, nginx.url) as env:
            for _ in range(3):
                await one(env, request("/track"))
            assert env.edge.proxy is not None
            metrics.track_origins(env.edge.proxy.registry)
            try:
                text = generate_latest(metrics.PROCESS_REGISTRY).decode()
            finally:
                metrics.track_origins(None)
    up = f'origin="{nginx.url}"'
    assert f"linkcert_edge_origin_requests_total{{{up}}} 3.0" in text
    assert f'linkcert_edge_origin_responses_total{{class="3xx",{up}}} 3.0' in text
    assert f'linkcert_edge_origin_failures_total{{origin="{down}",reason="refused"}}' in text
    assert f'linkcert_edge_origin_healthy{{origin="{down}"}} 0.0' in text
    assert f"linkcert_edge_origin_healthy{{{up}}} 1.0" in text
    assert f'linkcert_edge_origin_connections{{{up},state="idle"}} 1.0' in text
    assert f"linkcert_edge_origin_latency_seconds_count{{{up}}} 3.0" in text


@pytest.mark.nginx
async def test_an_https_origin_is_verified_against_the_configured_bundle(tmp_path: Path) -> None:
    authority = TestAuthority()
    issued = authority.issue("tracker.internal")
    chain, key, bundle = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    chain.write_bytes(issued.chain_pem)
    key.write_bytes(issued.key_pem)
    bundle.write_text(authority.root_pem)
    other = tmp_path / "other-ca.pem"
    other.write_text(TestAuthority().root_pem)
    with nginx_origin(tmp_path, tls=(chain, key)) as nginx:
        trusted = PoolSettings(ca_bundle=bundle, server_name="tracker.internal")
        async with proxy_edge(nginx.url, pool=trusted) as env:
            good = await one(env, request("/echo"), secure=True)
        wrong_name = PoolSettings(ca_bundle=bundle, server_name="elsewhere.internal")
        async with proxy_edge(nginx.url, pool=wrong_name) as env:
            misnamed = await one(env, request("/echo"))
        untrusted = PoolSettings(ca_bundle=other, server_name="tracker.internal")
        async with proxy_edge(nginx.url, pool=untrusted) as env:
            unknown_ca = await one(env, request("/echo"))
            failures = origin_stats(env)[nginx.url].stats.failures
    assert good.status == 200
    assert good.fields["host"] == DOMAIN
    assert good.fields["x-forwarded-proto"] == "https"
    assert misnamed.status == unknown_ca.status == 502
    assert failures["tls"] == 1


async def test_a_get_on_a_pooled_connection_the_origin_dropped_is_sent_again() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        first = await one(env, request("/once-a"))
        second = await one(env, request("/once-b"))  # the pooled connection: reset
        posted = await one(env, request("/once-c", method="POST", extra="Content-Length: 0\r\n"))
        again = await one(env, request("/once-d"))
        stats = origin_stats(env)[origin.url].stats
    assert (first.status, second.status) == (200, 200)
    # A POST is never sent twice: the reset reaches the client as a 502.
    assert posted.status == 502
    assert again.status == 200
    assert [seen.target for seen in origin.requests] == [
        "/once-a",
        "/once-b",
        "/once-b",
        "/once-c",
        "/once-d",
    ]
    assert stats.retries == 1
    # Connections the origin dropped while idle say nothing of its health.
    assert stats.failures["stale_connection"] == 2
    assert stats.failures["reset"] == 0


async def test_an_empty_post_keeps_its_content_length() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        reply = await one(env, request("/form", method="POST", extra="Content-Length: 0\r\n"))
    assert reply.status == 200
    assert origin.requests[0].header("content-length") == "0"


async def test_an_answer_that_is_not_http_gives_502() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: gzip\r\n\r\nhi")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with proxy_edge(f"http://127.0.0.1:{port}") as env:
            reply = await one(env, request("/x", method="DELETE"))
            failures = origin_stats(env)[f"http://127.0.0.1:{port}"].stats.failures
    finally:
        server.close()
    assert reply.status == 502
    assert failures["bad_response"] == 1


@pytest.mark.nginx
async def test_an_idle_origin_connection_is_closed_after_the_keepalive_timeout(
    tmp_path: Path,
) -> None:
    with nginx_origin(tmp_path) as nginx:
        pool = PoolSettings(keepalive_timeout=0.2)
        async with proxy_edge(nginx.url, pool=pool) as env:
            await one(env, request("/track"))
            origin = origin_stats(env)[nginx.url]
            await wait_for_async(lambda: origin.open == 0, "the idle connection closed")
            assert origin.idle == 0
            assert (await one(env, request("/track"))).status == 302


async def test_an_origin_that_never_accepts_gives_504_after_the_connect_timeout() -> None:
    # A listener whose accept queue is full: the kernel drops further connection attempts, so
    # connecting neither succeeds nor fails, as with a host that has gone silent.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        url = f"http://127.0.0.1:{port}"
        async with proxy_edge(url, pool=PoolSettings(connect_timeout=0.3)) as env:
            reply = await one(env, request("/track"))
            failures = origin_stats(env)[url].stats.failures
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert reply.status == 504
    assert failures["connect_timeout"] == 1


@pytest.mark.nginx
async def test_a_client_that_stops_reading_pauses_the_origin(tmp_path: Path) -> None:
    """Streaming, not buffering: a client that reads nothing makes the edge stop reading the
    origin, with little of the 40 MB held in the edge."""
    with nginx_origin(tmp_path) as nginx:
        (nginx.prefix / "www" / "files" / "huge.bin").write_bytes(b"z" * (40 * 1024 * 1024))
        async with proxy_edge(nginx.url) as env:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sock.connect(("127.0.0.1", env.http_port))
            _reader, writer = await asyncio.open_connection(sock=sock)
            try:
                writer.write(request("/files/huge.bin"))
                await writer.drain()
                hub = env.edge._hub
                connection = await wait_for_async(
                    lambda: next((c for c in hub.connections if c._proxy is not None), None),
                    "the request being relayed",
                )
                assert connection is not None
                exchange = connection._proxy
                assert exchange is not None

                def origin_paused() -> bool:
                    upstream = exchange._connection
                    return upstream is not None and not upstream.transport.is_reading()  # type: ignore[union-attr]

                await wait_for_async(origin_paused, "the origin connection paused")
                held = connection._transport.get_write_buffer_size()  # type: ignore[union-attr]
                assert held < 1024 * 1024
            finally:
                writer.transport.abort()


async def test_an_http_1_0_client_keeps_its_connection_when_it_asks_to() -> None:
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        reader, writer = await env.open_http()
        try:
            for number in range(3):
                head = f"GET /{number} HTTP/1.0\r\nHost: {DOMAIN}\r\nConnection: keep-alive\r\n"
                writer.write(head.encode() + b"\r\n")
                reply = await read_reply(reader)
                assert reply.status == 200
                assert reply.header("connection") == "keep-alive"
        finally:
            await close_writer(writer)
    assert [seen.target for seen in origin.requests] == ["/0", "/1", "/2"]
    assert all(seen.header("connection") is None for seen in origin.requests)


async def test_a_name_no_longer_served_stops_being_relayed_at_once() -> None:
    """Deleted, released or re-owned: the feeds drop the name from the edge, and the same
    decision that stops its links stops relaying its requests."""
    async with fault_origin() as origin, proxy_edge(origin.url) as env:
        before = await one(env, request("/l/1"))
        env.certificates.remove(DOMAIN)
        after = await one(env, request("/l/2"))
        assert not env.edge.proxy.serves(DOMAIN)  # type: ignore[union-attr]
    assert before.status == 200
    assert after.status == 404
    assert [seen.target for seen in origin.requests] == ["/l/1"]
