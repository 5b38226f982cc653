from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from linkcert.store import Account, Domain, Event, Store
from linkcert.store.db import POSTGRES_POOL_SIZE, alembic_config, head_revision


def test_migrate_is_idempotent(store: Store) -> None:
    store.migrate()
    assert store.schema_is_current()


def test_the_head_read_from_the_migration_files_is_alembics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head_revision() == head
    fresh = Store(url)
    fresh.migrate()
    assert fresh.schema_revision() == head
    fresh.close()


def test_times_come_back_aware_utc(store: Store) -> None:
    due = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with store.session() as session:
        account = Account(name="acme", contact_emails=["ops@acme.test"])
        session.add(account)
        session.flush()
        session.add(
            Domain(
                name="links.acme.test",
                unicode_name="links.acme.test",
                registrable="acme.test",
                account_id=account.id,
                next_attempt_at=due,
            )
        )
    with store.session() as session:
        domain = session.scalars(select(Domain)).one()
        assert domain.next_attempt_at == due
        assert domain.next_attempt_at.tzinfo is not None
        assert domain.dns_state == "pending" and domain.cert_state == "none"
        # Ordering by time works the same on both engines.
        later = due + timedelta(seconds=1)
        found = session.scalars(select(Domain).where(Domain.next_attempt_at < later)).all()
        assert len(found) == 1


def test_domain_names_are_unique(store: Store) -> None:
    with pytest.raises(IntegrityError), store.session() as session:
        for _ in range(2):
            session.add(Domain(name="a.example.org", unicode_name="a", registrable="x"))
            session.flush()


def test_events_keep_their_order(store: Store) -> None:
    with store.session() as session:
        domain = Domain(name="a.example.org", unicode_name="a", registrable="example.org")
        session.add(domain)
        session.flush()
        for i in range(3):
            session.add(Event(domain_id=domain.id, kind=f"k{i}", dns_state="ok", cert_state="none"))
    with store.session() as session:
        kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
    assert kinds == ["k0", "k1", "k2"]


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive"), store.session() as session:
        session.add(
            Domain(
                name="b.example.org",
                unicode_name="b",
                registrable="example.org",
                next_attempt_at=datetime(2030, 1, 1),
            )
        )
        session.flush()


@pytest.mark.postgres
def test_a_burst_of_threads_shares_a_fixed_number_of_connections(postgres_url: str) -> None:
    """More threads than connections wait their turn: the process never opens more than its
    pool (so a fleet cannot exhaust the server's connections), and every thread gets through."""
    db = Store(postgres_url)

    def one(_: int) -> int:
        with db.session() as session:
            # Held a moment, so that the threads overlap.
            session.execute(text("SELECT pg_sleep(0.02)"))
            return int(session.scalar(text("SELECT pg_backend_pid()")) or 0)

    try:
        with ThreadPoolExecutor(max_workers=POSTGRES_POOL_SIZE * 4) as pool:
            backends = list(pool.map(one, range(POSTGRES_POOL_SIZE * 12)))
    finally:
        db.close()
    assert len(backends) == POSTGRES_POOL_SIZE * 12
    assert 1 < len(set(backends)) <= POSTGRES_POOL_SIZE
