"""Each request on a keep-alive connection is judged by its own Host header, even though the
edge parses a repeated Host value only once per connection."""

from __future__ import annotations

from tests.edge_support import close_writer, get, read_response, running_edge


async def test_host_changes_between_requests_on_one_connection() -> None:
    async with running_edge() as env:
        env.add_domain("a.example.test")
        env.add_domain("b.example.test")
        token = env.token("a.example.test", 7, "https://dest.example/a")
        reader, writer = await env.open_https("a.example.test")
        statuses = []
        try:
            for host in (
                "a.example.test",
                "a.example.test:443",
                "b.example.test",  # not the connection's name: misdirected
                "A.Example.Test.",
                "a.example.test",
            ):
                writer.write(get(f"/c/{token}", host))
                statuses.append((await read_response(reader)).status)
        finally:
            await close_writer(writer)
        assert statuses == [302, 302, 421, 302, 302]


async def test_an_empty_host_after_a_good_one_is_still_refused() -> None:
    async with running_edge() as env:
        reader, writer = await env.open_http()
        try:
            writer.write(get("/healthz", "a.example.test"))
            first = await read_response(reader)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: \r\n\r\n")
            second = await read_response(reader)
        finally:
            await close_writer(writer)
        assert (first.status, second.status) == (200, 400)
