"""Checking an uploaded certificate and key: every mistake an operator can make is caught with a
message that says what to change, and a good chain is accepted and stored encrypted."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from linkcert.keys import MasterKeys, generate_master_key
from linkcert.keystore import cert_key_context
from linkcert.store import Domain, Store, utcnow
from linkcert.testbed import pki
from linkcert.uploads import (
    MAX_UPLOAD_BYTES,
    UploadError,
    check_upload,
    store_upload,
    system_roots,
)
from tests.certs_support import ThrowawayCA, key_pem, now, pem, self_signed

DOMAIN = "links.brand.test"


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


def test_a_good_chain_is_accepted_leaf_first(ca: ThrowawayCA) -> None:
    leaf = ca.issue(DOMAIN)
    checked = check_upload(leaf.chain_pem, leaf.key_pem, DOMAIN, private_roots=leaf.roots)
    assert checked.info.names == (DOMAIN,)
    assert checked.info.chain_length == 3
    assert checked.info.issuer_cn == "Throwaway Brand CA Issuing"
    assert checked.chain_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in checked.key_pem


def test_text_around_the_blocks_and_a_wildcard_are_fine(ca: ThrowawayCA) -> None:
    leaf = ca.issue("*.brand.test")
    noisy = b"subject=CN = *.brand.test\n" + leaf.chain_pem + b"\n\n"
    checked = check_upload(noisy.decode(), leaf.key_pem.decode(), DOMAIN, private_roots=leaf.roots)
    assert "subject=" not in checked.chain_pem


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not_pem", "not in PEM form"),
        ("key_as_cert", "holds a private key"),
        ("bad_key", "not a PEM private key"),
        ("encrypted_key", "passphrase"),
        ("other_key", "does not belong to the certificate"),
        ("reversed", "out of order"),
        ("ca_first", "CA certificate"),
        ("wrong_name", "does not cover links.brand.test"),
        ("expired", "expired on"),
        ("not_yet_valid", "not valid before"),
        ("leaf_only", "intermediate"),
        ("self_signed", "self-signed"),
        ("intermediates_swapped", "not signed by the certificate after it"),
        ("not_for_servers", "not for web servers"),
        ("weak_rsa", "at least 2048"),
        ("empty", "empty"),
        ("huge", "larger than"),
    ],
)
def test_mistakes_are_refused_with_what_to_fix(ca: ThrowawayCA, case: str, expected: str) -> None:
    leaf = ca.issue(DOMAIN)
    chain, key = leaf.chain_pem, leaf.key_pem
    match case:
        case "not_pem":
            chain = b"MIIB garbage"
        case "key_as_cert":
            chain = leaf.key_pem
        case "bad_key":
            key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        case "encrypted_key":
            key = key_pem(leaf.key, b"secret")
        case "other_key":
            key = ca.issue(DOMAIN).key_pem
        case "reversed":
            chain = b"".join(pem(c) for c in reversed(leaf.chain))
        case "ca_first":
            chain = pem(ca.intermediate) + pem(ca.root)
        case "wrong_name":
            leaf = ca.issue("links.other.test")
            chain, key = leaf.chain_pem, leaf.key_pem
        case "expired":
            leaf = ca.issue(DOMAIN, not_before=now() - datetime.timedelta(days=30), days=10)
            chain, key = leaf.chain_pem, leaf.key_pem
        case "not_yet_valid":
            leaf = ca.issue(DOMAIN, not_before=now() + datetime.timedelta(days=2))
            chain, key = leaf.chain_pem, leaf.key_pem
        case "leaf_only":
            chain = pem(leaf.certificate)
        case "self_signed":
            leaf = self_signed(DOMAIN)
            chain, key = leaf.chain_pem, leaf.key_pem
        case "intermediates_swapped":
            chain = pem(leaf.certificate) + pem(ca.root) + pem(ca.intermediate)
        case "not_for_servers":
            leaf = ca.issue(DOMAIN, server_auth=False)
            chain, key = leaf.chain_pem, leaf.key_pem
        case "weak_rsa":
            # 1024-bit RSA: only for this refusal, never served.
            weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
            leaf = ca.issue(DOMAIN, key=weak)
            chain, key = leaf.chain_pem, leaf.key_pem
        case "empty":
            chain = b"   \n"
        case "huge":
            chain = b"x" * (MAX_UPLOAD_BYTES + 1)
    with pytest.raises(UploadError) as caught:
        check_upload(chain, key, DOMAIN, private_roots=(ca.root,))
    message = str(caught.value)
    assert expected in message, message
    assert message[0].isupper() and message.endswith(".")
    assert "BEGIN PRIVATE KEY-----\nAAAA" not in message  # never echoes the files


def test_stored_key_is_encrypted_and_bound_to_the_domain(store: Store, ca: ThrowawayCA) -> None:
    keys = MasterKeys.parse(generate_master_key("t"))
    leaf = ca.issue(DOMAIN)
    checked = check_upload(leaf.chain_pem, leaf.key_pem, DOMAIN, private_roots=leaf.roots)
    with store.session() as session:
        domain = Domain(
            name=DOMAIN,
            unicode_name=DOMAIN,
            registrable="brand.test",
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(domain)
        session.flush()
        certificate = store_upload(session, keys, domain, checked)
        assert certificate.source == "upload" and certificate.order_id is None
        assert certificate.key_encrypted is not None
        assert b"PRIVATE KEY" not in certificate.key_encrypted
        opened = keys.decrypt(certificate.key_encrypted, cert_key_context(DOMAIN))
        assert opened == checked.key_pem
        assert certificate.not_after == checked.info.not_after


def _web_pki_chain(name: str) -> tuple[bytes, bytes, x509.Certificate]:
    """A chain built the way public CAs build theirs (testbed/pki.py), and its root."""
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    year = datetime.timedelta(days=365)
    root = pki.ca_certificate("Stand-in Public Root", root_key, path_length=1, lifetime=year)
    mid = pki.ca_certificate(
        "Stand-in Issuing", mid_key, issuer=root, issuer_key=root_key, path_length=0, lifetime=year
    )
    leaf = pki.leaf_certificate(
        leaf_key, [name], mid, mid_key, lifetime=datetime.timedelta(days=90)
    )
    return pem(leaf) + pem(mid), pki.private_key_pem(leaf_key), root


def test_a_chain_to_a_public_root_is_publicly_trusted() -> None:
    chain, key, root = _web_pki_chain(DOMAIN)
    checked = check_upload(chain, key, DOMAIN, public_roots=(root,))
    assert checked.publicly_trusted
    # The same chain with that root only in the private bundle: accepted, but not public.
    private = check_upload(chain, key, DOMAIN, public_roots=(), private_roots=(root,))
    assert not private.publicly_trusted


def test_a_chain_to_a_private_root_needs_the_bundle(ca: ThrowawayCA) -> None:
    leaf = ca.issue(DOMAIN)
    # The system's roots (Debian's ca-certificates) do not include a brand's private CA.
    assert system_roots(), "no system roots: install ca-certificates"
    with pytest.raises(UploadError, match="does not lead to a publicly trusted root") as caught:
        check_upload(leaf.chain_pem, leaf.key_pem, DOMAIN)
    assert "upload_ca_bundle" in str(caught.value)
    other = ThrowawayCA.create("Another Private CA")
    with pytest.raises(UploadError, match="nor to a root of upload_ca_bundle"):
        check_upload(leaf.chain_pem, leaf.key_pem, DOMAIN, private_roots=(other.root,))
    checked = check_upload(leaf.chain_pem, leaf.key_pem, DOMAIN, private_roots=(ca.root,))
    assert not checked.publicly_trusted
