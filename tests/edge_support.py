"""Helpers for the edge tests: a throwaway CA, per-domain certificates, a small HTTP client.

tests/test_edge_support.py checks the helpers, so a broken helper fails there and not as a
puzzling edge failure elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from linkcert.edge import CertificateCache, Edge, EdgeSettings
from linkcert.edge.http import CertificateLoader
from linkcert.edge.routes import ChallengeSource
from linkcert.testbed.pki import ONE_DAY, ca_certificate, leaf_certificate, private_key_pem
from linkcert.tracking import (
    Click,
    ClickSink,
    TrackingKeys,
    make_token,
    tracking_key_from_secret,
)

# Valid from yesterday until a month (CA) or a week (leaf) from today: well past any test run.
_CA_LIFETIME = 31 * ONE_DAY
_LEAF_LIFETIME = 8 * ONE_DAY


@dataclass(frozen=True)
class IssuedCertificate:
    chain_pem: bytes
    key_pem: bytes
    serial: int


@dataclass
class TestAuthority:
    """A CA that exists for one test run, with an intermediate like a public CA's."""

    __test__ = False  # not a test class, despite the name

    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    intermediate_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    _serial: int = 1000

    def __post_init__(self) -> None:
        self.root = ca_certificate(
            "linkcert test root", self.root_key, path_length=1, lifetime=_CA_LIFETIME, serial=1
        )
        self.intermediate = ca_certificate(
            "linkcert test intermediate",
            self.intermediate_key,
            issuer=self.root,
            issuer_key=self.root_key,
            path_length=0,
            lifetime=_CA_LIFETIME,
            serial=2,
        )

    @property
    def root_pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issue(self, *names: str) -> IssuedCertificate:
        """A leaf for `names` (SANs), with its chain (leaf, intermediate) and its key."""
        self._serial += 1
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = leaf_certificate(
            key,
            names,
            self.intermediate,
            self.intermediate_key,
            subject=names[0],
            lifetime=_LEAF_LIFETIME,
            serial=self._serial,
        )
        chain = b"".join(
            cert.public_bytes(serialization.Encoding.PEM) for cert in (leaf, self.intermediate)
        )
        return IssuedCertificate(chain, private_key_pem(key), self._serial)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA."""
        context = ssl.create_default_context(cadata=self.root_pem)
        context.set_alpn_protocols(["http/1.1"])
        return context


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> HttpResponse:
    """One response from `reader`; the body is read by Content-Length (none for HEAD)."""
    raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 5) if length else b""
    return HttpResponse(status, headers, body)


def get(path: str, host: str | None, *, extra: str = "", method: str = "GET") -> bytes:
    """A minimal HTTP/1.1 request."""
    host_line = f"Host: {host}\r\n" if host is not None else ""
    return f"{method} {path} HTTP/1.1\r\n{host_line}{extra}\r\n".encode("latin-1")


async def exchange(
    port: int,
    request: bytes,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    head: bool = False,
) -> HttpResponse:
    """Open a connection, send one request, read one response, close."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ssl_context, server_hostname=server_hostname
    )
    try:
        writer.write(request)
        return await read_response(reader, head=head)
    finally:
        await close_writer(writer)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (tolerating a reset after the close)."""
    chunks = []
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


@dataclass
class EdgeUnderTest:
    """A running edge on loopback ports, with the fakes its interfaces are wired to."""

    edge: Edge
    authority: TestAuthority
    certificates: CertificateCache
    key: bytes
    clicks: list[Click]
    challenges: dict[str, str]

    @property
    def http_port(self) -> int:
        assert self.edge.http_port is not None
        return self.edge.http_port

    @property
    def https_port(self) -> int:
        assert self.edge.https_port is not None
        return self.edge.https_port

    def add_domain(self, name: str, version: int = 1) -> IssuedCertificate:
        issued = self.authority.issue(name)
        self.certificates.put(name, issued.chain_pem, issued.key_pem, version)
        return issued

    def token(
        self, domain: str, link_id: int = 1, destination: str = "https://shop.example/p?q=1"
    ) -> str:
        """A token for a link on `domain`, which the edge then serves (links are answered
        only on served names)."""
        if domain.lower() not in self.certificates:
            self.add_domain(domain.lower())
        return make_token(self.key, domain, link_id, destination)

    async def http(self, request: bytes, *, head: bool = False) -> HttpResponse:
        return await exchange(self.http_port, request, head=head)

    async def https(self, name: str, request: bytes, *, head: bool = False) -> HttpResponse:
        return await exchange(
            self.https_port,
            request,
            ssl_context=self.authority.client_context(),
            server_hostname=name,
            head=head,
        )

    async def open_http(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.http_port)

    async def open_https(self, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            "127.0.0.1",
            self.https_port,
            ssl=self.authority.client_context(),
            server_hostname=name,
        )


@contextlib.asynccontextmanager
async def running_edge(
    *,
    sink: ClickSink | None = None,
    challenge_lookup: ChallengeSource | None = None,
    tracking_keys: TrackingKeys | None = None,
    certificate_loader: CertificateLoader | None = None,
    **settings: Any,
) -> AsyncIterator[EdgeUnderTest]:
    """An edge with HTTP and HTTPS listeners on 127.0.0.1, closed (and flushed) on exit."""
    clicks: list[Click] = []
    challenges: dict[str, str] = {}

    async def lookup(token: str) -> str | None:
        return challenges.get(token)

    certificates = CertificateCache()
    key = tracking_key_from_secret("test-secret-" + "x" * 32)
    edge = Edge(
        tracking_key=tracking_keys or key,
        certificates=certificates,
        challenge_lookup=lookup if challenge_lookup is None else challenge_lookup,
        click_sink=sink if sink is not None else clicks.extend,
        settings=EdgeSettings(http="127.0.0.1:0", https="127.0.0.1:0", **settings),
        certificate_loader=certificate_loader,
    )
    await edge.start()
    try:
        yield EdgeUnderTest(edge, TestAuthority(), certificates, key, clicks, challenges)
    finally:
        await edge.aclose()


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
