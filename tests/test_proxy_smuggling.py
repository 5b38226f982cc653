"""Requests that are ambiguous about where they end are refused and never reach the origin.

If the edge and the origin could disagree on a request's length, a client could hide a second
request inside the first one's body and have the origin answer it outside the edge's checks
("request smuggling"). Each attempt here gets a 400 from the edge, its connection is closed,
and the origin never sees a connection at all.
"""

from __future__ import annotations

import pytest

from linkcert.edge import ProxySettings
from linkcert.edge.upstream import parse_origin
from tests.edge_support import close_writer, read_until_closed, running_edge
from tests.proxy_support import fault_origin

DOMAIN = "links.shop.test"
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: links.shop.test\r\n\r\n"

ATTEMPTS = {
    "content-length and transfer-encoding": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "transfer-encoding and content-length": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 4\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "two different content-lengths": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nContent-Length: 0\r\n"
        b"Content-Length: 49\r\n\r\n" + SMUGGLED
    ),
    "a content-length list": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nContent-Length: 0, 49\r\n\r\n" + SMUGGLED
    ),
    "obsolete line folding": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nX-A: a\r\n Content-Length: 49\r\n\r\n"
        + SMUGGLED
    ),
    "a transfer-encoding that is not chunked": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nTransfer-Encoding: gzip\r\n\r\n" + SMUGGLED
    ),
    "chunked twice": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "a space before the colon": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nTransfer-Encoding : chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED
    ),
    "a bare LF ending a field": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nContent-Length: 49\n\r\n" + SMUGGLED
    ),
    "two host fields": (
        b"GET /c HTTP/1.1\r\nHost: links.shop.test\r\nHost: admin.internal\r\n\r\n"
    ),
    "a content-length with a sign": (
        b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nContent-Length: +49\r\n\r\n" + SMUGGLED
    ),
}


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
async def test_an_ambiguous_request_is_refused_and_never_forwarded(attempt: str) -> None:
    async with fault_origin() as origin:
        settings = ProxySettings(mode="proxy", upstreams=(parse_origin(origin.url),))
        async with running_edge(proxy=settings) as env:
            env.add_domain(DOMAIN)
            reader, writer = await env.open_http()
            try:
                writer.write(ATTEMPTS[attempt])
                answer = await read_until_closed(reader)
            finally:
                await close_writer(writer)
            assert env.edge.counters.bad_requests == 1
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert answer.count(b"HTTP/1.1") == 1  # one answer, then the connection closed
    assert origin.connections == 0


async def test_a_bad_chunk_midway_stops_the_relayed_request() -> None:
    """The head was fine and relaying began; the body breaks. The origin gets no complete
    request (the chunk stream ends without its last chunk), the client gets a 400."""
    async with fault_origin() as origin:
        settings = ProxySettings(mode="proxy", upstreams=(parse_origin(origin.url),))
        async with running_edge(proxy=settings) as env:
            env.add_domain(DOMAIN)
            reader, writer = await env.open_http()
            try:
                writer.write(
                    b"POST /c HTTP/1.1\r\nHost: links.shop.test\r\nTransfer-Encoding: chunked\r\n"
                    b"\r\n5\r\nhello\r\nzz\r\n" + SMUGGLED
                )
                answer = await read_until_closed(reader)
            finally:
                await close_writer(writer)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert [seen.target for seen in origin.requests if seen.body] == []
    assert all(seen.target != "/admin" for seen in origin.requests)
