"""The edge on uvloop, the faster event loop a deployment is likely to run it on."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import uvloop

from tests.edge_support import close_writer, get, read_response, running_edge


async def _scenario() -> None:
    async with running_edge() as env:
        env.add_domain("uv.example.test")
        env.challenges["t"] = "t.thumb"
        token = env.token("uv.example.test", 3, "https://dest.example/uv")
        for open_connection in (env.open_http, lambda: env.open_https("uv.example.test")):
            reader, writer = await open_connection()
            try:
                writer.write(
                    get(f"/c/{token}", "uv.example.test")
                    + get("/.well-known/acme-challenge/t", "uv.example.test")
                    + get(f"/o/{token}", "uv.example.test")
                )
                answers = [await read_response(reader) for _ in range(3)]
            finally:
                await close_writer(writer)
            assert [a.status for a in answers] == [302, 200, 200]
            assert answers[0].header("location") == "https://dest.example/uv"
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            await env.open_https("nobody.example.test")
        oversized = await env.http(get("/healthz", "x.test", extra=f"X-A: {'a' * 20000}\r\n"))
        assert oversized.status == 431
    assert len(env.clicks) == 4


def test_edge_serves_on_uvloop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_scenario())
