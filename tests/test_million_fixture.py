"""The scale fixture writes what the product would: proven, secured domains whose certificates
verify, whose keys open with the master key, and which the edge's own loader serves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from bench import million_fixture
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from linkcert.edge import CertificateCache
from linkcert.keys import MasterKeys
from linkcert.keystore import cert_key_context
from linkcert.service.feeds import StoreFeeds
from linkcert.store import Store
from tests.conftest import require_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def fixture_url() -> Iterator[str]:
    require_postgres()
    database = "linkcert_fixture_" + uuid.uuid4().hex[:10]
    url = million_fixture.create_database(database, replace=True)
    try:
        yield url
    finally:
        with psycopg.connect(million_fixture.ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_refuses_the_shared_databases() -> None:
    with pytest.raises(ValueError, match="never writes"):
        million_fixture.create_database("test", replace=True)


def test_fills_secured_domains_the_edge_serves(fixture_url: str) -> None:
    fixture = million_fixture.fill(fixture_url, 40, accounts=7, processes=2)
    keys = MasterKeys.parse(million_fixture.MASTER_KEY)
    root = x509.load_pem_x509_certificate(fixture.root_pem)
    with psycopg.connect(fixture_url.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT d.name, d.account_id, d.proof, d.dns_state, d.cert_state, d.next_attempt_at,"
            " c.chain_pem, c.key_encrypted, c.serial, c.fingerprint_sha256, c.not_before,"
            " c.not_after, c.renew_at"
            " FROM domains d JOIN certificates c ON c.id = d.current_certificate_id"
        ).fetchall()
        accounts = conn.execute(
            "SELECT count(*) FROM accounts WHERE dcv_secret IS NOT NULL AND dns_label IS NOT NULL"
            " AND tracking_domain_id = id"
        ).fetchone()
        events = conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall()
        next_id = conn.execute("SELECT nextval(pg_get_serial_sequence('domains', 'id'))").fetchone()
    assert len(rows) == 40
    assert accounts == (7,)
    assert events == [("secured", 40)]
    assert next_id == (41,)
    assert {row[1] for row in rows} == set(range(1, 8))
    assert len({row[9] for row in rows}) == 40  # every certificate distinct
    for name, _, proof, dns, cert_state, next_at, chain, blob, serial, _, nb, na, renew in rows:
        assert (proof, dns, cert_state) == ("dns", "ok", "active")
        assert nb < renew < na and next_at == renew
        leaf, intermediate = x509.load_pem_x509_certificates(chain.encode())
        leaf.verify_directly_issued_by(intermediate)
        intermediate.verify_directly_issued_by(root)
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [name]
        assert (leaf.not_valid_before_utc, leaf.not_valid_after_utc) == (nb, na)
        assert f"{leaf.serial_number:x}" == serial
        key = serialization.load_pem_private_key(
            keys.decrypt(blob, cert_key_context(name)), password=None
        )
        assert key.public_key() == leaf.public_key()

    # The edge's own loader serves every one of them.
    cache = CertificateCache()
    store = Store(fixture_url)
    try:
        result = StoreFeeds(store, keys, cache).sync_here()
    finally:
        store.close()
    assert (result.loaded, result.failed) == (40, 0)
    context = cache.context_for(fixture.name(17))
    assert context is not None and context.domain == "links.c0000017.test"
