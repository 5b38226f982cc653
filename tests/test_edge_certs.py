"""The certificate cache: compact storage, lazy contexts, replacement, bounds, bad input."""

from __future__ import annotations

import logging
import os

import pytest

from linkcert.edge import CertificateCache, DomainContext, PemError, UnusableCertificate
from linkcert.edge.pem import certificates_from_pem, to_pem
from tests.edge_support import TestAuthority

authority = TestAuthority()


def _put(cache: CertificateCache, name: str, version: int = 1) -> None:
    issued = authority.issue(name)
    cache.put(name, issued.chain_pem, issued.key_pem, version)


def test_names_versions_and_removal() -> None:
    cache = CertificateCache()
    _put(cache, "A.Example.Test.", version=3)
    _put(cache, "b.example.test")
    assert sorted(cache.names()) == ["a.example.test", "b.example.test"]
    assert cache.version("a.example.test") == 3
    assert "A.EXAMPLE.TEST" in cache and len(cache) == 2
    assert cache.remove("a.example.test") is True
    assert cache.remove("a.example.test") is False
    assert cache.version("a.example.test") is None
    assert cache.names() == ["b.example.test"]


def test_contexts_are_built_on_first_use_and_kept() -> None:
    cache = CertificateCache()
    _put(cache, "lazy.example.test")
    assert cache.contexts_built == 0
    context = cache.context_for("lazy.example.test")
    assert isinstance(context, DomainContext)
    assert (context.domain, context.version) == ("lazy.example.test", 1)
    assert cache.context_for("lazy.example.test") is context
    assert cache.contexts_built == 1
    assert cache.context_for("unknown.example.test") is None


def test_new_content_rebuilds_and_the_same_content_does_not() -> None:
    cache = CertificateCache()
    issued = authority.issue("r.example.test")
    cache.put("r.example.test", issued.chain_pem, issued.key_pem, 1)
    first = cache.context_for("r.example.test")
    cache.put("r.example.test", issued.chain_pem, issued.key_pem, 2)  # a re-sync, same PEMs
    assert cache.context_for("r.example.test") is first
    assert first is not None and first.version == 2
    _put(cache, "r.example.test", version=3)
    rebuilt = cache.context_for("r.example.test")
    assert rebuilt is not first and rebuilt is not None and rebuilt.version == 3


def test_contexts_are_bounded_least_recently_used_first() -> None:
    cache = CertificateCache(max_contexts=2)
    for name in ("one.test", "two.test", "three.test"):
        _put(cache, name)
    one = cache.context_for("one.test")
    cache.context_for("two.test")
    cache.context_for("one.test")  # one is now the most recent
    cache.context_for("three.test")  # evicts two
    assert cache.contexts_cached == 2
    assert cache.context_for("one.test") is one
    built = cache.contexts_built
    cache.context_for("two.test")
    assert cache.contexts_built == built + 1


def test_intermediates_are_stored_once_and_everything_as_der() -> None:
    cache = CertificateCache()
    _put(cache, "x.example.test")
    _put(cache, "y.example.test")
    store = cache._stored  # the point of this test is the storage itself
    x, y = store.get("x.example.test"), store.get("y.example.test")
    assert x is not None and y is not None
    assert x.intermediates[0] is y.intermediates[0]
    # DER, not PEM: the leaf and key are held smaller than they arrived.
    issued = authority.issue("z.example.test")
    assert cache.packed_bytes == len(x.leaf) + len(x.key_der) + len(y.leaf) + len(y.key_der)
    assert cache.packed_bytes < len(issued.chain_pem + issued.key_pem)


def test_pem_round_trip() -> None:
    issued = authority.issue("p.example.test")
    ders = certificates_from_pem(issued.chain_pem)
    again = b"".join(to_pem("CERTIFICATE", der) for der in ders)
    assert certificates_from_pem(again) == ders


@pytest.mark.parametrize(
    ("chain", "key", "message"),
    [
        (b"", None, "no PEM block"),
        (b"not pem at all", None, "no PEM block"),
        (None, b"", "exactly one unencrypted PRIVATE KEY"),
        ("key-in-chain", None, "pass keys separately"),
        (None, "two-keys", "exactly one"),
        (None, "encrypted", "unencrypted"),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", None, "base64"),
    ],
)
def test_malformed_pems_are_refused_at_put(
    chain: bytes | str | None, key: bytes | str | None, message: str
) -> None:
    issued = authority.issue("m.example.test")
    chain_pem = issued.chain_pem if chain is None else chain
    key_pem = issued.key_pem if key is None else key
    if chain_pem == "key-in-chain":
        chain_pem = issued.chain_pem + issued.key_pem
    if key_pem == "two-keys":
        key_pem = issued.key_pem * 2
    if key_pem == "encrypted":
        key_pem = (
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            b"DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
        )
    assert isinstance(chain_pem, bytes) and isinstance(key_pem, bytes)
    cache = CertificateCache()
    with pytest.raises(PemError, match=message):
        cache.put("m.example.test", chain_pem, key_pem, 1)
    assert "m.example.test" not in cache


def test_names_must_be_ascii() -> None:
    issued = authority.issue("xn--bcher-kva.example.test")
    with pytest.raises(ValueError, match="A-label"):
        CertificateCache().put("bücher.example.test", issued.chain_pem, issued.key_pem, 1)


def test_unusable_certificate_is_tried_once_per_version(caplog: pytest.LogCaptureFixture) -> None:
    cache = CertificateCache()
    good, other = authority.issue("u.example.test"), authority.issue("v.example.test")
    cache.put("u.example.test", good.chain_pem, other.key_pem, 1)
    with caplog.at_level(logging.ERROR, logger="linkcert.edge"):
        for _ in range(3):
            with pytest.raises(UnusableCertificate, match="version 1"):
                cache.context_for("u.example.test")
    assert cache.context_failures == 1
    assert len(caplog.records) == 1
    assert b"PRIVATE" not in caplog.records[0].getMessage().encode()
    cache.put("u.example.test", good.chain_pem, good.key_pem, 2)
    assert cache.context_for("u.example.test") is not None


def test_building_contexts_leaves_no_descriptor_open() -> None:
    before = len(os.listdir("/proc/self/fd"))
    cache = CertificateCache()
    for n in range(30):
        _put(cache, f"fd{n}.example.test")
        cache.context_for(f"fd{n}.example.test")
    assert len(os.listdir("/proc/self/fd")) == before
