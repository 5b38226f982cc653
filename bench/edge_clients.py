"""The benchmark's own TLS client: touch every name once, and check that resumption is refused.

Every handshake here verifies the served chain against the throwaway root and the name against
the certificate, so a successful touch also proves the server served *that* name's certificate.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

from bench.edge_proc import LOOPBACK


def verifying_context(root_pem: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(root_pem))
    context.set_alpn_protocols(["http/1.1"])
    return context


async def _touch_all(
    port: int,
    names: Sequence[str],
    root_pem: Path,
    concurrency: int,
    timeout: float,
    verify: bool,
) -> int:
    context = verifying_context(root_pem)
    if not verify:
        # The server's work is the same; the client's verification would only slow the pass.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    queue = iter(names)
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for name in queue:
            try:
                async with asyncio.timeout(timeout):
                    _, writer = await asyncio.open_connection(
                        LOOPBACK, port, ssl=context, server_hostname=name
                    )
            except (OSError, TimeoutError):
                failures += 1
                continue
            writer.transport.abort()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


def touch_all(
    port: int,
    names: Sequence[str],
    root_pem: Path,
    *,
    concurrency: int = 16,
    timeout: float = 30.0,
    verify: bool = True,
) -> int:
    """One TLS handshake per entry of `names` (repeats allowed), verified against the root
    unless `verify` is false; returns the failures."""
    import uvloop

    return uvloop.run(_touch_all(port, names, root_pem, concurrency, timeout, verify))


def resumption(port: int, name: str, path: str, root_pem: Path) -> tuple[bool, bool]:
    """(ticket offered, session resumed): whether the server hands out a session ticket after a
    full handshake, and whether it accepts that session back on a new connection. `wrk` keeps
    its last session and offers it again, so a server saying yes to both would be measured
    resuming rather than doing full handshakes."""
    context = verifying_context(root_pem)
    request = f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()
    with (
        socket.create_connection((LOOPBACK, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(request)
        # TLS 1.3 tickets come after the handshake, with the response: read to the end.
        while tls.recv(65536):
            pass
        session = tls.session
    offered = session is not None and session.has_ticket
    with (
        socket.create_connection((LOOPBACK, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name, session=session) as tls,
    ):
        return offered, bool(tls.session_reused)
