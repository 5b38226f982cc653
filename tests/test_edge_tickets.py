"""TLS session tickets: off by default (every handshake is a full one), on when asked for."""

from __future__ import annotations

import asyncio
import socket
import ssl

from tests.test_edge_support import EdgeUnderTest, running_edge


def _ticket_then_resume(env: EdgeUnderTest, name: str) -> tuple[bool, bool]:
    """(a ticket came with the first connection, the second connection resumed with it)."""
    context = env.authority.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    request = f"GET /healthz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()
    with (
        socket.create_connection(("127.0.0.1", env.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(request)
        # TLS 1.3 tickets arrive after the handshake, next to the response.
        while tls.recv(65536):
            pass
        session = tls.session
    with (
        socket.create_connection(("127.0.0.1", env.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name, session=session) as tls,
    ):
        resumed = bool(tls.session_reused)
    return session is not None and session.has_ticket, resumed


async def test_no_ticket_by_default_so_every_handshake_is_full() -> None:
    async with running_edge() as env:
        env.add_domain("links.alpha.test")
        offered, resumed = await asyncio.to_thread(_ticket_then_resume, env, "links.alpha.test")
    assert (offered, resumed) == (False, False)
    assert env.edge.counters.handshakes_completed == 2


async def test_tickets_when_enabled_resume_on_the_same_process() -> None:
    async with running_edge(tls_session_tickets=True) as env:
        env.add_domain("links.alpha.test")
        offered, resumed = await asyncio.to_thread(_ticket_then_resume, env, "links.alpha.test")
    assert (offered, resumed) == (True, True)
