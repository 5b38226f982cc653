"""The client: one HTTPS request that only succeeds on a certificate chaining to Pebble's root.

Hostname checking is on, the SNI is the name asked for, and the only trusted root is the one
Pebble issues under, so a response means the name's own certificate is being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

_MAX_HEAD = 16384
_MAX_BODY = 65536


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def client_context(root_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=root_pem)
    # A fresh handshake each time: a resumed session would skip the certificate check.
    context.options |= ssl.OP_NO_TICKET
    return context


async def https_get(
    port: int, name: str, path: str, context: ssl.SSLContext, timeout: float
) -> Answer:
    """GET https://name/path from 127.0.0.1:port; raises OSError/ssl.SSLError/TimeoutError.

    `timeout` bounds the whole exchange, handshake included: for Caddy the handshake is where
    the certificate gets issued.
    """
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=name, ssl_handshake_timeout=timeout
        )
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode("ascii"))
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEAD:
                raise ValueError("response head too long")
            answer = _parse_head(head)
            length = int(answer.headers.get("content-length", "0") or "0")
            body = await reader.readexactly(min(length, _MAX_BODY)) if length else b""
            return Answer(answer.status, answer.headers, body)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


def _parse_head(head: bytes) -> Answer:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return Answer(int(parts[1]), headers)
