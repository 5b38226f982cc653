"""Certificates no domain serves any more are deleted `certificate_retention_days` after they
expire, in batches, by one worker at a time; the current certificate never is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from linkcert.certificates import install_certificate
from linkcert.config import ConfigError, Settings, load_settings
from linkcert.counters import CERTIFICATES_PRUNED
from linkcert.events.store import claim_cursor, release_cursor
from linkcert.keys import MasterKeys, generate_master_key, generate_private_key, private_key_to_pem
from linkcert.keystore import cert_key_context
from linkcert.store import AcmeAccount, Base, Certificate, Domain, Order, Store, utcnow
from linkcert.store.db import alembic_config
from linkcert.worker.issuance import DCV_RECORDS, Issuer, IssuingCa, OrderingClient
from linkcert.worker.retention import (
    CERTIFICATE_LEASE_NAME,
    keep_certificates_pruned,
    prune_certificates,
    prune_certificates_batch,
)

KEYS = MasterKeys.parse(generate_master_key("retention"))
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def add_domain(store: Store, name: str = "links.shop.test") -> int:
    with store.session() as session:
        domain = Domain(name=name, unicode_name=name, registrable=name.split(".", 1)[1])
        session.add(domain)
        session.flush()
        return domain.id


def install(
    store: Store,
    domain_id: int,
    not_after: datetime,
    *,
    key_pem: bytes | None = None,
    order_info: dict[str, object] | None = None,
    source: str = "acme",
) -> int:
    """A certificate (ACME: with its finished order) made the domain's current one, as a
    renewal does; returns its id."""
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        key = KEYS.encrypt(
            key_pem or private_key_to_pem(generate_private_key()), cert_key_context(domain.name)
        )
        order_id = None
        if source == "acme":
            account = session.scalar(select(AcmeAccount))
            if account is None:
                account = AcmeAccount(directory_url="https://ca.test/dir", key_encrypted=b"k")
                session.add(account)
                session.flush()
            order = Order(
                domain_id=domain_id,
                acme_account_id=account.id,
                status="valid",
                info=order_info or {},
                key_encrypted=key,
                csr_pem="csr",
                created_at=not_after - 91 * DAY,
                finished_at=not_after - 90 * DAY,
            )
            session.add(order)
            session.flush()
            order_id = order.id
        certificate = Certificate(
            domain_id=domain_id,
            chain_pem="chain",
            key_encrypted=key,
            serial=f"{not_after:%Y%m%d%H%M%S%f}",
            issuer="Test CA",
            not_before=not_after - 90 * DAY,
            not_after=not_after,
            fingerprint_sha256="00" * 32,
            order_id=order_id,
            source=source,
        )
        install_certificate(
            session, domain, certificate, notifier=None, event="certificate_issued", message=""
        )
        return certificate.id


def certificate_ids(store: Store) -> set[int]:
    with store.session() as session:
        return set(session.scalars(select(Certificate.id)))


def current_of(store: Store, domain_id: int) -> int | None:
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        return domain.current_certificate_id


def pruned() -> float:
    value: float = CERTIFICATES_PRUNED._value.get()
    return value


def test_the_default_and_a_negative_value() -> None:
    assert Settings().certificate_retention_days == 30
    assert (
        load_settings(
            environ={"LINKCERT_CERTIFICATE_RETENTION_DAYS": "0"}
        ).certificate_retention_days
        == 0
    )
    with pytest.raises(
        ConfigError, match=r"CERTIFICATE_RETENTION_DAYS.*greater than or equal to 0"
    ):
        load_settings(environ={"LINKCERT_CERTIFICATE_RETENTION_DAYS": "-1"})


async def test_a_replaced_certificate_is_kept_while_valid_and_goes_after_retention(
    store: Store,
) -> None:
    domain_id = add_domain(store)
    old = install(store, domain_id, NOW + 20 * DAY)
    new = install(store, domain_id, NOW + 80 * DAY)
    assert current_of(store, domain_id) == new

    # Still valid (an edge may hold it; a rollback or a revocation may need it): kept.
    assert await prune_certificates(store, 30, pause=0, now=NOW) == 0
    # Expired, but within the retention: kept.
    assert await prune_certificates(store, 30, pause=0, now=NOW + 49 * DAY) == 0
    assert certificate_ids(store) == {old, new}

    before = pruned()
    assert await prune_certificates(store, 30, pause=0, now=NOW + 51 * DAY) == 1
    assert certificate_ids(store) == {new}
    assert pruned() == before + 1
    # Its order (which held a copy of its key) went with it; the current one's stays.
    with store.session() as session:
        orders = session.scalars(select(Order)).all()
        assert [o.id for o in orders] == [session.get(Certificate, new).order_id]  # type: ignore[union-attr]
        assert orders[0].key_encrypted is not None


async def test_the_current_certificate_is_never_deleted_however_long_expired(
    store: Store,
) -> None:
    domain_id = add_domain(store)
    current = install(store, domain_id, NOW - 400 * DAY)  # renewals have failed for a year
    assert await prune_certificates(store, 30, pause=0, now=NOW) == 0
    assert certificate_ids(store) == {current}
    assert current_of(store, domain_id) == current


async def test_zero_keeps_certificates_for_ever(store: Store) -> None:
    domain_id = add_domain(store)
    install(store, domain_id, NOW - 4000 * DAY)
    install(store, domain_id, NOW + 10 * DAY)
    await asyncio.wait_for(keep_certificates_pruned(store, 0, asyncio.Event()), timeout=5)
    assert len(certificate_ids(store)) == 2


async def test_a_key_another_row_still_holds_is_kept(store: Store) -> None:
    """An uploaded replacement may reuse the old certificate's key; each row keeps its own
    encrypted copy, and deleting the old row leaves the current one's usable."""
    domain_id = add_domain(store, "links.brand.test")
    key_pem = private_key_to_pem(generate_private_key())
    install(store, domain_id, NOW - 100 * DAY, key_pem=key_pem, source="upload")
    current = install(store, domain_id, NOW + 300 * DAY, key_pem=key_pem, source="upload")
    # An order still open for the domain (a renewal under way) holds a key too.
    with store.session() as session:
        account = AcmeAccount(directory_url="https://ca.test/dir", key_encrypted=b"k")
        session.add(account)
        session.flush()
        blob = KEYS.encrypt(key_pem, cert_key_context("links.brand.test"))
        session.add(
            Order(domain_id=domain_id, acme_account_id=account.id, key_encrypted=blob, csr_pem="c")
        )

    assert await prune_certificates(store, 30, pause=0, now=NOW) == 1
    assert certificate_ids(store) == {current}
    with store.session() as session:
        row = session.get(Certificate, current)
        assert row is not None and row.key_encrypted is not None
        assert KEYS.decrypt(row.key_encrypted, cert_key_context("links.brand.test")) == key_pem
        open_order = session.scalars(select(Order)).one()
        assert open_order.finished_at is None and open_order.key_encrypted is not None


async def test_an_order_with_zone_records_left_to_remove_stays_without_its_key(
    store: Store,
) -> None:
    domain_id = add_domain(store)
    old = install(store, domain_id, NOW - 60 * DAY, order_info={DCV_RECORDS: [["label", "v"]]})
    with store.session() as session:
        old_order = session.get(Certificate, old).order_id  # type: ignore[union-attr]
    install(store, domain_id, NOW + 30 * DAY)

    assert await prune_certificates(store, 30, pause=0, now=NOW) == 1
    with store.session() as session:
        order = session.get(Order, old_order)
        assert order is not None and order.key_encrypted is None
        assert order.info[DCV_RECORDS] == [["label", "v"]]


async def test_batches_delete_at_most_their_size_earliest_end_first(store: Store) -> None:
    domain_id = add_domain(store)
    ends = [NOW - (300 - i) * DAY for i in range(7)]
    old = [install(store, domain_id, end) for end in ends]
    current = install(store, domain_id, NOW + 60 * DAY)

    deleted, after = prune_certificates_batch(store, NOW - 30 * DAY, batch=3)
    assert deleted == 3
    assert after is not None
    assert certificate_ids(store) == {*old[3:], current}

    assert await prune_certificates(store, 30, batch=3, pause=0, now=NOW) == 4
    assert certificate_ids(store) == {current}


async def test_an_expired_current_certificate_does_not_stop_a_pass(store: Store) -> None:
    """Domains whose renewals failed keep an expired current certificate; the pass goes past
    them to the replaced ones behind."""
    stuck = [add_domain(store, f"links.stuck{i}.test") for i in range(4)]
    for domain_id in stuck:
        install(store, domain_id, NOW - 500 * DAY)
    renewed = add_domain(store)
    install(store, renewed, NOW - 400 * DAY)
    current = install(store, renewed, NOW + 60 * DAY)

    assert await prune_certificates(store, 30, batch=2, pause=0, now=NOW) == 1
    assert len(certificate_ids(store)) == 5
    assert current_of(store, renewed) == current


async def test_one_worker_at_a_time(store: Store) -> None:
    domain_id = add_domain(store)
    install(store, domain_id, NOW - 100 * DAY)
    install(store, domain_id, NOW + 60 * DAY)
    assert claim_cursor(store, CERTIFICATE_LEASE_NAME, "other-worker", timedelta(minutes=5)) == 0

    assert await prune_certificates(store, 30, pause=0, now=NOW, owner="this-worker") == 0
    assert len(certificate_ids(store)) == 2

    release_cursor(store, CERTIFICATE_LEASE_NAME, "other-worker")
    assert await prune_certificates(store, 30, pause=0, now=NOW, owner="this-worker") == 1
    # The pass gave the lease back when it ended.
    taken = claim_cursor(store, CERTIFICATE_LEASE_NAME, "other-worker", timedelta(minutes=5))
    assert taken is not None


class _NoCa:
    """Deleting a brand domain (uploaded certificates only) revokes nothing at any CA."""

    def get(self) -> tuple[OrderingClient, int]:
        raise AssertionError("a CA was asked for")


async def test_a_deleted_domains_certificates_go_once_expired_past_retention(
    store: Store,
) -> None:
    domain_id = add_domain(store, "links.brand.test")
    install(store, domain_id, NOW - 200 * DAY, source="upload")
    last = install(store, domain_id, utcnow() + 100 * DAY, source="upload")

    issuer = Issuer(store, KEYS, [IssuingCa("none", _NoCa())])
    await issuer.delete(domain_id)
    assert current_of(store, domain_id) is None

    # The certificate it served until the delete is kept until it has expired (keys erased).
    assert await prune_certificates(store, 30, pause=0, now=utcnow()) == 1
    assert certificate_ids(store) == {last}
    with store.session() as session:
        row = session.get(Certificate, last)
        assert row is not None and row.key_encrypted is None
        assert session.scalar(select(func.count()).select_from(Domain)) == 1
    later = utcnow() + 131 * DAY
    assert await prune_certificates(store, 30, pause=0, now=later) == 1
    assert certificate_ids(store) == set()


def test_the_certificates_order_index_is_migrated_both_ways(store: Store) -> None:
    """Deleting an order checks that no certificate names it: by index, not a table scan."""

    def indexes() -> set[str]:
        return {str(i["name"]) for i in inspect(store.engine).get_indexes("certificates")}

    assert "ix_certificates_order_id" in indexes()
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "ix_certificates" in repr(d)] == []
    config = alembic_config(store.url)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0020")
    assert "ix_certificates_order_id" not in indexes()
    store.migrate()
    assert "ix_certificates_order_id" in indexes()


def add_order(
    store: Store,
    domain_id: int,
    started: datetime,
    *,
    ended: bool = True,
    info: dict[str, object] | None = None,
) -> int:
    with store.session() as session:
        account = session.scalar(select(AcmeAccount))
        assert account is not None
        order = Order(
            domain_id=domain_id,
            acme_account_id=account.id,
            status="invalid" if ended else "pending",
            info=info or {},
            key_encrypted=b"key",
            csr_pem="csr",
            created_at=started,
            finished_at=started + timedelta(minutes=5) if ended else None,
        )
        session.add(order)
        session.flush()
        return order.id


def order_ids(store: Store) -> set[int]:
    with store.session() as session:
        return set(session.scalars(select(Order.id)))


async def test_orders_that_ended_without_a_certificate_go_after_retention(
    store: Store,
) -> None:
    domain_id = add_domain(store)
    current = install(store, domain_id, NOW + 60 * DAY)  # with its order, started long ago
    with store.session() as session:
        served = session.get(Certificate, current).order_id  # type: ignore[union-attr]
    add_order(store, domain_id, NOW - 100 * DAY)  # failed: goes
    still_open = add_order(store, domain_id, NOW - 90 * DAY, ended=False)
    records = add_order(store, domain_id, NOW - 80 * DAY, info={DCV_RECORDS: [["l", "v"]]})
    recent = add_order(store, domain_id, NOW - 10 * DAY)

    assert await prune_certificates(store, 30, batch=2, pause=0, now=NOW) == 0
    assert order_ids(store) == {served, still_open, records, recent}

    # The next passes take up from where the last stopped, and reach the recent one in time.
    assert await prune_certificates(store, 30, batch=2, pause=0, now=NOW + 19 * DAY) == 0
    assert recent in order_ids(store)
    assert await prune_certificates(store, 30, batch=2, pause=0, now=NOW + 21 * DAY) == 0
    assert order_ids(store) == {served, still_open, records}
