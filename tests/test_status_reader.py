"""The short commands' lean read path gives the very status and events the store gives.

`linkcert domain status` reads with `linkcert.store.reader` (the standard library's sqlite3,
or psycopg) instead of SQLAlchemy's ORM. Here both read the same rows, on SQLite and on
PostgreSQL: a secured domain with its CA's choice and the renewal plan the worker stored, one
renewed by its lifetime with a problem waiting, one only claimed, one whose label mixes scripts,
and each domain's timeline; then the command's own JSON, and what both say of a database that
is missing or not migrated.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from linkcert.certificates import install_certificate
from linkcert.cli import app
from linkcert.domains import (
    CA_CHOICE,
    create_account,
    domain_events,
    domain_status,
    set_tracking_domain,
)
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.redact import masked_url
from linkcert.status import NotFound
from linkcert.store import AcmeAccount, Domain, Order, Store
from linkcert.store.reader import StatusReader, open_reader
from linkcert.store.schema import StoreError
from linkcert.uploads import check_upload, store_upload
from tests.api_support import POLICY, World
from tests.certs_support import ThrowawayCA

KEYS = MasterKeys.parse(generate_master_key("reader"))
MIXED = "pаy.gamma.test"  # the "а" is Cyrillic
NAMES = ["links.alpha.test", "links.beta.test", "links.gamma.test", MIXED]


def secure(store: Store, name: str, *, ari: bool, ca: str | None) -> None:
    """Install a certificate as the worker would: with an ARI plan or none stored (the
    lifetime rule then applies), and the order's record of the CA chosen."""
    leaf = ThrowawayCA.create().issue(name, days=60)
    checked = check_upload(leaf.chain_pem, leaf.key_pem, name, private_roots=leaf.roots)
    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == name)).one()
        certificate = store_upload(session, KEYS, domain, checked)
        certificate.source = "acme"
        if ari:
            certificate.renew_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
            certificate.ari_next_check_at = datetime.now(UTC) + timedelta(hours=6)
        if ca is not None:
            account = AcmeAccount(directory_url=f"https://{ca}.test/dir", key_encrypted=b"k")
            session.add(account)
            session.flush()
            order = Order(
                domain_id=domain.id,
                acme_account_id=account.id,
                csr_pem="",
                info={CA_CHOICE: {"ca": ca, "reason": f"the CAA records allow only {ca}"}},
            )
            session.add(order)
            session.flush()
            certificate.order_id = order.id
        install_certificate(
            session, domain, certificate, notifier=None, event="secured", message="secured"
        )
        domain.dns_state = "ok"


@pytest.fixture
def populated(world: World) -> Store:
    store = world.store
    secure(store, "links.alpha.test", ari=True, ca="Let's Encrypt")
    secure(store, "links.beta.test", ari=False, ca=None)
    with store.session() as session:
        beta = session.scalars(select(Domain).where(Domain.name == "links.beta.test")).one()
        beta.dns_state = "caa_blocked"
        beta.problems = [{"code": "caa_forbids", "message": "CAA forbids.", "fix": "Add one."}]
        beta.failure_class = "ca_unavailable"
        beta.next_attempt_at = datetime.now(UTC) + timedelta(minutes=10)
        beta.link_epoch = 3
    gamma = create_account(store, "gamma")
    set_tracking_domain(store, gamma.id, "links.gamma.test", POLICY)  # claimed, not proven
    set_tracking_domain(store, gamma.id, MIXED, POLICY)
    return store


def reader_for(store: Store) -> StatusReader:
    reader = open_reader(store.url, store.display_url)
    assert reader is not None
    return reader


def test_the_reader_gives_the_stores_status_and_events(populated: Store) -> None:
    with reader_for(populated) as reader:
        for name in NAMES:
            lean, full = reader.domain_status(name), domain_status(populated, name)
            assert lean == full
            assert lean.to_json() == full.to_json()
            assert reader.domain_events(name) == domain_events(populated, name)
            assert reader.domain_events(name, limit=1) == domain_events(populated, name, 1)
        # What was set up shows, so that the comparison above compared something.
        alpha = reader.domain_status("links.alpha.test")
        assert (alpha.renewal_basis, alpha.ca) == ("ari", "Let's Encrypt")
        beta = reader.domain_status("links.beta.test")
        assert (beta.renewal_basis, beta.epoch, beta.problems[0]["code"]) == (
            "lifetime",
            3,
            "caa_forbids",
        )
        assert reader.domain_status("links.gamma.test").account is None
        assert reader.domain_status(MIXED).warnings[0]["code"] == "mixed_script"


def test_names_are_found_in_any_form_and_a_missing_one_is_named(populated: Store) -> None:
    with reader_for(populated) as reader:
        for typed in ("LINKS.ALPHA.TEST.", " links.alpha.test", "xn--py-7kc.gamma.test"):
            assert reader.domain_status(typed) == domain_status(populated, typed)
        with pytest.raises(NotFound) as missing:
            reader.domain_status("links.nowhere.test")
        with pytest.raises(NotFound) as missing_too:
            domain_status(populated, "links.nowhere.test")
        assert str(missing.value) == str(missing_too.value)


def test_the_commands_json_is_the_same_either_way(
    populated: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("LINKCERT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LINKCERT_DATABASE_URL", populated.url)
    runner = CliRunner()
    argv = ["domain", "status", "links.alpha.test", "--json", "--events"]
    lean = runner.invoke(app, argv)
    assert lean.exit_code == 0, lean.output
    # The same command made to use the store: a URL form the lean reader leaves to it.
    monkeypatch.setattr("linkcert.store.reader._POSTGRES_PREFIXES", ())
    monkeypatch.setattr("linkcert.store.reader.sqlite_path", lambda url: None)
    full = runner.invoke(app, argv)
    assert full.exit_code == 0, full.output
    assert json.loads(lean.output) == json.loads(full.output)
    assert json.loads(lean.output)["renewal_basis"] == "ari"


def _store_says(url: str) -> str:
    store = Store(url)
    try:
        with pytest.raises(StoreError) as refused:
            store.check_ready()
    finally:
        store.close()
    return str(refused.value)


def _reader_says(url: str) -> str:
    with pytest.raises(StoreError) as refused:
        open_reader(url, masked_url(url))
    return str(refused.value)


def test_a_missing_or_unmigrated_database_reads_the_same(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        missing = f"sqlite:///{tmp_path / 'missing' / 'linkcert.sqlite3'}"
        assert _reader_says(missing) == _store_says(missing)
        Path(db_url.split("///", 1)[1]).touch()  # a file, but no schema
    assert "no linkcert schema" in _reader_says(db_url)
    assert _reader_says(db_url) == _store_says(db_url)
    store = Store(db_url)
    store.migrate()
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001_old'")
    store.close()
    assert "is at schema 0001_old" in _reader_says(db_url)
    assert _reader_says(db_url) == _store_says(db_url)


def test_the_reader_never_writes(populated: Store) -> None:
    with reader_for(populated) as reader, pytest.raises(reader.errors) as refused:
        reader._rows("UPDATE domains SET wanted = ? RETURNING id", False)
    assert "read" in str(refused.value).lower()  # read-only, query_only
