"""TLS session tickets: off by default (every handshake is a full one), on when asked for, and
shared between edges (as between processes) through common keys."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from linkcert.edge import sslctx
from tests.edge_support import EdgeUnderTest, running_edge


def _ticket_then_resume(
    env: EdgeUnderTest,
    name: str,
    second: EdgeUnderTest | None = None,
    maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
) -> tuple[bool, bool]:
    """(a ticket came with the first connection, the second connection, to `second` if given,
    resumed with it). Both connections must complete and be answered."""
    context = env.authority.client_context()
    context.maximum_version = maximum
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
    port = (second or env).https_port
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name, session=session) as tls,
    ):
        resumed = bool(tls.session_reused)
        tls.sendall(request)
        assert tls.recv(65536).startswith(b"HTTP/1.1 200 ")
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


def _serve_same_certificate(first: EdgeUnderTest, second: EdgeUnderTest, name: str) -> None:
    issued = first.add_domain(name)
    second.certificates.put(name, issued.chain_pem, issued.key_pem, 1)


KEYS_A = bytes(range(80))
KEYS_B = bytes(range(1, 81))


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
async def test_edges_sharing_ticket_keys_resume_each_others_sessions(
    maximum: ssl.TLSVersion,
) -> None:
    async with running_edge() as first, running_edge() as second:
        _serve_same_certificate(first, second, "links.alpha.test")
        assert first.edge.use_ticket_keys(KEYS_A)
        assert second.edge.use_ticket_keys(KEYS_A)
        offered, resumed = await asyncio.to_thread(
            _ticket_then_resume, first, "links.alpha.test", second, maximum
        )
    assert (offered, resumed) == (True, True)


async def test_a_ticket_sealed_with_other_keys_gets_a_full_handshake() -> None:
    async with running_edge() as first, running_edge() as second:
        _serve_same_certificate(first, second, "links.alpha.test")
        first.edge.use_ticket_keys(KEYS_A)
        second.edge.use_ticket_keys(KEYS_B)  # as after a rotation
        offered, resumed = await asyncio.to_thread(
            _ticket_then_resume, first, "links.alpha.test", second
        )
        assert second.edge.counters.handshakes_completed == 1
    assert (offered, resumed) == (True, False)


async def test_rotating_the_keys_and_turning_them_off() -> None:
    async with running_edge() as env:
        env.add_domain("links.alpha.test")
        env.edge.use_ticket_keys(KEYS_A)
        assert await asyncio.to_thread(_ticket_then_resume, env, "links.alpha.test") == (
            True,
            True,
        )
        env.edge.use_ticket_keys(None)
        assert await asyncio.to_thread(_ticket_then_resume, env, "links.alpha.test") == (
            False,
            False,
        )


def test_ticket_keys_must_be_80_bytes() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError, match="80 bytes"):
        sslctx.set_ticket_keys(context, b"short")


async def test_without_the_openssl_call_tickets_stay_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sslctx, "_calls", lambda: None)
    async with running_edge() as env:
        env.add_domain("links.alpha.test")
        assert env.edge.use_ticket_keys(KEYS_A) is False
        offered, _ = await asyncio.to_thread(_ticket_then_resume, env, "links.alpha.test")
    assert offered is False
