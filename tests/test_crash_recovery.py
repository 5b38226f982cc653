"""A crash of `linkcert serve` on SQLite: the restarted process resumes at once.

`kill -9` one second into a wave of saved domains leaves leases under the dead process's name.
The restarted `serve` holds the same identity (it alone holds the database's worker lock), so
it takes those leases back as it starts instead of waiting them out, and every domain is
secured within seconds, each certificate issued exactly once by the CA.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from linkcert.config import Settings
from linkcert.domains import create_account, set_tracking_domain
from linkcert.keys import generate_master_key
from linkcert.names import NamePolicy
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime, SoleWorker
from linkcert.states import DnsState, FailureClass
from linkcert.store import AcmeAccount, Certificate, Domain, Event, Order, Store
from linkcert.testbed.environment import settings_env
from linkcert.testbed.waiting import wait_for_async
from linkcert.worker import leases
from linkcert.worker.lifecycle import DnsVerdict, IssuanceFailure, Worker
from tests.e2e_support import Platform, start_platform
from tests.fleet_support import Process

POLICY = NamePolicy(allow_test_domains=True)
DOMAINS = 40
# The issue's bound: every domain secured within 30 s of the restart. Without the take-back,
# the leases below (5 minutes, the old default) would hold the domains far longer.
RESTART_BOUND = 30.0


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    world = start_platform(tmp_path_factory.mktemp("pebble"))
    yield world
    world.pebble.stop()
    world.dns.stop()


def _count(store: Store, *conditions: object) -> int:
    with store.session() as session:
        query = select(func.count()).select_from(Domain)
        for condition in conditions:
            query = query.where(condition)  # type: ignore[arg-type]
        return int(session.scalar(query) or 0)


def _secured(store: Store) -> int:
    return _count(store, Domain.current_certificate_id.is_not(None))


@pytest.mark.pebble
async def test_kill_9_mid_wave_resumes_at_once_and_issues_each_certificate_once(
    platform: Platform, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'linkcert.sqlite3'}"
    store = Store(url)
    store.migrate()
    names = [f"l{i}.crash{i % 5}.test" for i in range(DOMAINS)]
    for i, name in enumerate(names):
        platform.point(name)
        create_account(store, f"crash-{i}")
        set_tracking_domain(store, f"crash-{i}", name, POLICY)
    settings = platform.settings(url, tmp_path, worker_lease_seconds=300)
    env = settings_env(settings)
    first = Process("serve", env, tmp_path, "first")
    try:
        # One second into the wave: the first order placed, then a second more.
        await wait_for_async(lambda: _count(store, Domain.lease_owner.is_not(None)) > 0, timeout=60)
        await asyncio.sleep(1.0)
        first.kill()
    finally:
        first.stop()
    left_leased = _count(store, Domain.lease_owner.is_not(None))
    assert left_leased > 0, "the crash came after the wave: nothing left to take back"
    assert _secured(store) < DOMAINS

    restarted_at = time.monotonic()
    second = Process("serve", env, tmp_path, "second")
    try:
        await wait_for_async(
            lambda: _secured(store) == DOMAINS, timeout=RESTART_BOUND, interval=0.25
        )
        took = time.monotonic() - restarted_at
    finally:
        code = second.stop()
    assert code == 0, second.output()
    assert "resuming" in second.output()
    # Exactly once: one certificate per domain in the store and at the CA.
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Certificate)) == DOMAINS
        valid = session.scalar(
            select(func.count()).select_from(Order).where(Order.status == "valid")
        )
    assert valid == DOMAINS
    issued = re.findall(r"Issued certificate serial \w+ for order", platform.pebble.read_log())
    assert len(issued) == DOMAINS
    print(f"{left_leased} domains left leased; all {DOMAINS} secured {took:.1f} s after restart")
    store.close()


def test_a_dead_workers_leases_run_out_within_seconds(store: Store) -> None:
    create_account(store, "a")
    set_tracking_domain(store, "a", "links.lease.test", POLICY)
    with store.session() as session:
        due = session.scalar(select(Domain.next_attempt_at))
    assert due is not None
    assert leases.claim_due(store, "dead", due, 10, leases.DEFAULT_LEASE)
    assert Settings().worker_lease_seconds == leases.DEFAULT_LEASE.total_seconds() <= 30
    # Another worker takes it up once the lease has run out: seconds, not minutes.
    assert leases.claim_due(store, "w2", due + timedelta(seconds=29), 10) == []
    assert leases.claim_due(store, "w2", due + timedelta(seconds=31), 10)


def test_reclaim_frees_only_this_identitys_leases(store: Store) -> None:
    for name in ("a", "b"):
        create_account(store, name)
        set_tracking_domain(store, name, f"links.{name}.test", POLICY)
    with store.session() as session:
        due = session.scalar(select(func.max(Domain.next_attempt_at)))
    assert due is not None
    (mine,) = leases.claim_due(store, "me", due, 1)
    (theirs,) = leases.claim_due(store, "them", due, 1)
    assert leases.reclaim_own(store, "me") == 1
    assert leases.claim_due(store, "me", due, 10) == [mine]
    assert theirs not in leases.claim_due(store, "other", due, 10)


async def test_a_second_worker_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.sqlite3'}"
    store = Store(url)
    lock = SoleWorker.for_store(store)
    assert lock is not None
    lock.acquire()
    try:
        settings = Settings(
            data_dir=tmp_path,
            database_url=url,
            cname_targets=("edge.platform.test",),
            master_key=SecretStr(generate_master_key("k1")),
        )
        runtime = Runtime(settings, Roles(edge=False, api=False), store=store)
        with pytest.raises(Exception, match="another linkcert process runs the worker"):
            await runtime.start()
    finally:
        lock.release()
        store.close()


async def test_a_resumed_order_that_failed_validation_is_retried_at_once_once(
    store: Store,
) -> None:
    """The CA validated while no edge answered (the process was down): the domain does not
    wait out the back-off for a failure the crash caused; a second failure does."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    with store.session() as session:
        domain = Domain(
            name="l.resumed.test",
            unicode_name="l.resumed.test",
            registrable="resumed.test",
            next_attempt_at=now,
            problems=[],
        )
        account = AcmeAccount(directory_url="https://ca.test/dir", key_encrypted=b"k")
        session.add_all([domain, account])
        session.flush()
        session.add(Order(domain_id=domain.id, acme_account_id=account.id, url="u", csr_pem="c"))
        domain_id = domain.id

    async def dns_check(name: str) -> DnsVerdict:
        return DnsVerdict(DnsState.OK)

    async def obtain(domain_id: int) -> None:
        with store.session() as session:  # the order is found invalid and closed
            for order in session.scalars(select(Order).where(Order.domain_id == domain_id)):
                order.finished_at = now
        raise IssuanceFailure(FailureClass.CHALLENGE_FAILED, "Connection refused.")

    worker = Worker(store, dns_check, obtain, clock=lambda: now)

    async def one_pass() -> None:
        assert leases.claim_due(store, worker.worker_id, now, 10) == [domain_id]
        await worker.process(domain_id)
        leases.release(store, worker.worker_id, domain_id)

    await one_pass()
    with store.session() as session:
        row = session.get(Domain, domain_id)
        assert row is not None and row.next_attempt_at == now
        kinds = session.scalars(select(Event.kind).where(Event.domain_id == domain_id)).all()
    assert "order_interrupted" in kinds
    # A new order that fails too is a real failure: the usual back-off.
    with store.session() as session:
        session.add(Order(domain_id=domain_id, acme_account_id=account.id, url="u2", csr_pem="c"))
    await one_pass()
    with store.session() as session:
        row = session.get(Domain, domain_id)
        assert row is not None and row.next_attempt_at is not None
        assert row.next_attempt_at >= (now + timedelta(seconds=60))
