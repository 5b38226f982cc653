"""Certificates loaded at their first handshake: the edge with more names than it holds.

The cache knows a name by its version (`put_index`) and gets the certificate when a handshake
wants it; the handshake waits (boundedly) for the integrator's loader, then goes on from the
ClientHello it kept. Real sockets, real TLS, a throwaway CA; the store-backed loader is in
tests/test_feeds_lazy.py.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from linkcert.edge import CertificateCache, CertificateNotLoaded
from linkcert.edge.certstore import CertificateStore
from tests.edge_support import IssuedCertificate, TestAuthority, close_writer, running_edge

ALPHA = "links.alpha.test"
BETA = "links.beta.test"
GAMMA = "links.gamma.test"


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority()


def test_an_indexed_row_holds_no_bytes_until_put() -> None:
    store = CertificateStore()
    assert store.put_index("a.test", 7)
    assert "a.test" in store and store.version("a.test") == 7
    assert store.get("a.test") is None and not store.is_loaded("a.test")
    assert store.put("a.test", 7, b"leaf", (b"inter",), "PRIVATE KEY", b"key")
    assert store.is_loaded("a.test") and store.loaded_count == 1
    assert not store.put_index("a.test", 7)  # same version: keeps its bytes
    assert store.get("a.test") is not None
    assert store.put_index("a.test", 8)  # another version: bytes dropped
    assert store.get("a.test") is None and store.loaded_count == 0
    assert store.put("a.test", 8, b"leaf2", (b"inter",), "PRIVATE KEY", b"key2")
    assert store.unload("a.test") and not store.unload("a.test")
    assert store.version("a.test") == 8 and store.max_version() == 8
    assert store.versions() == {"a.test": (8, 0)}
    assert store.remove("a.test") and "a.test" not in store


def test_the_cache_says_which_names_wait_for_their_certificate(authority: TestAuthority) -> None:
    cache = CertificateCache(max_loaded=2)
    issued = {name: authority.issue(name) for name in (ALPHA, BETA, GAMMA)}
    for version, name in enumerate((ALPHA, BETA, GAMMA), start=1):
        cache.put_index(name, version, epoch=3)
    assert len(cache) == 3 and cache.loaded_count == 0
    assert cache.link_epoch(ALPHA) == 3
    with pytest.raises(CertificateNotLoaded):
        cache.context_for(ALPHA)
    assert cache.context_for("links.unknown.test") is None

    for version, name in enumerate((ALPHA, BETA, GAMMA), start=1):
        cert = issued[name]
        cache.put(name, cert.chain_pem, cert.key_pem, version, 3, on_demand=True)
    # At most two loaded at a handshake: the oldest, ALPHA, went back to waiting.
    assert cache.loaded_count == 2 and not cache.is_loaded(ALPHA)
    with pytest.raises(CertificateNotLoaded):
        cache.context_for(ALPHA)
    context = cache.context_for(GAMMA)
    assert context is not None and context.version == 3

    # A renewed certificate (a new version) replaces the ready context with a wait.
    cache.put_index(GAMMA, 9, epoch=3)
    with pytest.raises(CertificateNotLoaded):
        cache.context_for(GAMMA)
    # A domain dropped is no longer served at all.
    cache.remove(BETA)
    assert cache.context_for(BETA) is None


class Loader:
    """Puts certificates into the cache as a store would, after a short wait."""

    def __init__(self, cache: CertificateCache, issued: dict[str, IssuedCertificate]) -> None:
        self.cache = cache
        self.issued = issued
        self.calls: list[str] = []
        self.block = asyncio.Event()
        self.block.set()
        self.answer: bool | None = None  # what to return instead of loading

    async def __call__(self, name: str) -> bool:
        self.calls.append(name)
        await self.block.wait()
        await asyncio.sleep(0.01)
        if self.answer is not None:
            return self.answer
        if name not in self.issued:
            self.cache.remove(name)
            return True
        cert = self.issued[name]
        self.cache.put(name, cert.chain_pem, cert.key_pem, 1, on_demand=True)
        return True


def _peer_names(writer: asyncio.StreamWriter) -> list[str]:
    peer = writer.get_extra_info("peercert")
    return [value for kind, value in peer["subjectAltName"] if kind == "DNS"]


async def test_a_name_not_loaded_gets_its_own_certificate_after_the_load() -> None:
    loader: Loader | None = None

    async def load(name: str) -> bool:
        assert loader is not None
        return await loader(name)

    async with running_edge(certificate_loader=load) as env:
        issued = {ALPHA: env.authority.issue(ALPHA), BETA: env.authority.issue(BETA)}
        loader = Loader(env.certificates, issued)
        env.certificates.put_index(ALPHA, 1)
        env.certificates.put_index(BETA, 1)

        # Several handshakes for names not loaded, at once: each gets its own certificate.
        opened = await asyncio.gather(*(env.open_https(n) for n in (ALPHA, BETA, ALPHA)))
        try:
            assert [_peer_names(writer) for _, writer in opened] == [[ALPHA], [BETA], [ALPHA]]
        finally:
            for _, writer in opened:
                await close_writer(writer)
        assert env.certificates.is_loaded(ALPHA) and env.certificates.is_loaded(BETA)

        # Loaded: the next handshake does not ask again.
        calls = len(loader.calls)
        _, writer = await env.open_https(ALPHA)
        await close_writer(writer)
        assert len(loader.calls) == calls

        # A tracked link on the lazily loaded name works as on any other.
        token = env.token(BETA, 5, "https://beta.example/")
        response = await env.https(
            BETA, f"GET /c/{token} HTTP/1.1\r\nHost: {BETA}\r\n\r\n".encode()
        )
        assert response.status == 302
    assert env.edge.counters.handshakes_failed == {}


async def test_a_name_gone_by_the_time_of_the_load_is_refused_as_unknown() -> None:
    async with running_edge() as env:
        loader = Loader(env.certificates, {})

        async def load(name: str) -> bool:
            return await loader(name)

        env.edge._hub.certificate_loader = load
        env.certificates.put_index(GAMMA, 4)
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            await env.open_https(GAMMA)
        assert GAMMA not in env.certificates
    assert env.edge.counters.handshakes_failed == {"unknown_name": 1}


async def test_a_load_that_fails_or_takes_too_long_ends_in_an_alert() -> None:
    async with running_edge(certificate_wait=0.2) as env:
        loader = Loader(env.certificates, {ALPHA: env.authority.issue(ALPHA)})

        async def load(name: str) -> bool:
            return await loader(name)

        env.edge._hub.certificate_loader = load
        env.certificates.put_index(ALPHA, 1)
        loader.answer = False  # say, the database is down
        with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
            await env.open_https(ALPHA)
        loader.answer = None
        loader.block.clear()  # a database that does not answer
        with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
            await env.open_https(ALPHA)
        # Once the store answers again, so does the edge.
        loader.block.set()
        _, writer = await env.open_https(ALPHA)
        assert _peer_names(writer) == [ALPHA]
        await close_writer(writer)
    assert env.edge.counters.handshakes_failed == {"certificate_unavailable": 2}


async def test_without_a_loader_a_name_not_loaded_is_refused() -> None:
    async with running_edge() as env:
        env.certificates.put_index(ALPHA, 1)
        with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
            await env.open_https(ALPHA)
    assert env.edge.counters.handshakes_failed == {"certificate_unavailable": 1}


def test_packing_the_names_keeps_every_row(authority: TestAuthority) -> None:
    cache = CertificateCache()
    cert = authority.issue(ALPHA)
    cache.put(ALPHA, cert.chain_pem, cert.key_pem, 300, epoch=2)
    cache.put_index(BETA, 1000, epoch=1)
    cache.remove(BETA)
    cache.put_index(GAMMA, 7)
    cache.pack()
    assert cache.versions() == {ALPHA: (300, 2), GAMMA: (7, 0)}
    assert cache.is_loaded(ALPHA) and not cache.is_loaded(GAMMA)
    context = cache.context_for(ALPHA)
    assert context is not None and context.version == 300
    cache.put_index(BETA, 1001)  # a freed row is reused after packing too
    assert cache.version(BETA) == 1001 and len(cache) == 3
