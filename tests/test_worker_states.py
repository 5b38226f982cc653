"""The lifecycle state machine on a real store, with DNS verdicts and issuance given directly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from linkcert.states import CertState, DnsState, FailureClass
from linkcert.store import Domain, Event, Store
from linkcert.worker import leases
from linkcert.worker.lifecycle import DnsVerdict, IssuanceFailure, Worker

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def add_domain(store: Store, name: str, due: datetime = NOW) -> int:
    with store.session() as session:
        domain = Domain(
            name=name, unicode_name=name, registrable=name, next_attempt_at=due, problems=[]
        )
        session.add(domain)
        session.flush()
        return domain.id


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


async def test_dns_not_ready_then_fixed_then_ordered(store: Store) -> None:
    clock = Clock()
    verdicts = {
        "a.shop.test": DnsVerdict(
            DnsState.POINTS_ELSEWHERE, [{"code": "x", "message": "m", "fix": "f"}]
        )
    }
    obtained: list[int] = []

    async def dns_check(name: str) -> DnsVerdict:
        return verdicts[name]

    async def obtain(domain_id: int) -> None:
        obtained.append(domain_id)
        raise IssuanceFailure(FailureClass.CA_UNAVAILABLE, "The CA did not answer.")

    domain_id = add_domain(store, "a.shop.test")
    worker = Worker(store, dns_check, obtain, clock=clock)
    await worker.run_until_idle()
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        assert domain.dns_state == DnsState.POINTS_ELSEWHERE
        assert domain.next_attempt_at == NOW + timedelta(seconds=5)
        assert domain.lease_owner is None
    assert obtained == []

    verdicts["a.shop.test"] = DnsVerdict(DnsState.OK)
    clock.now = NOW + timedelta(seconds=5)
    await worker.run_until_idle()
    assert obtained == [domain_id]
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        assert domain.dns_state == DnsState.OK
        assert domain.cert_state == CertState.FAILED
        assert domain.failure_class == FailureClass.CA_UNAVAILABLE
        assert domain.next_attempt_at is not None
        assert domain.next_attempt_at >= clock.now + timedelta(seconds=60)
        kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
    assert kinds == ["dns_not_ready", "dns_ok", "issuance_failed"]


async def test_two_workers_never_take_the_same_domain(store: Store) -> None:
    ids = [add_domain(store, f"d{i}.shop.test") for i in range(20)]
    first = leases.claim_due(store, "w1", NOW, 15)
    second = leases.claim_due(store, "w2", NOW, 15)
    assert len(first) == 15 and len(second) == 5
    assert set(first) | set(second) == set(ids)
    assert not set(first) & set(second)
    # An expired lease can be taken over by another worker.
    later = NOW + timedelta(minutes=6)
    third = leases.claim_due(store, "w3", later, 100)
    assert set(third) == set(ids)
    assert not leases.extend(store, "w1", first[0], later + timedelta(minutes=5))


async def test_concurrent_claims_are_disjoint(store: Store) -> None:
    for i in range(60):
        add_domain(store, f"c{i}.shop.test")
    results = await asyncio.gather(
        *(asyncio.to_thread(leases.claim_due, store, f"w{i}", NOW, 10) for i in range(8))
    )
    claimed = [d for r in results for d in r]
    assert len(claimed) == len(set(claimed)) == 60


async def test_unwanted_domains_are_parked(store: Store) -> None:
    domain_id = add_domain(store, "old.shop.test")
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        domain.wanted = False

    async def never(_: object) -> DnsVerdict:
        raise AssertionError("an unwanted domain is not checked")

    worker = Worker(store, never, never, clock=Clock())  # type: ignore[arg-type]
    await worker.run_until_idle()
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None and domain.next_attempt_at is None
