"""The lifecycle state machine on a real store, with DNS verdicts and issuance given directly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from linkcert.states import CertState, DnsState, FailureClass
from linkcert.store import Account, Certificate, Domain, Event, Store
from linkcert.worker import leases
from linkcert.worker.lifecycle import DnsVerdict, IssuanceFailure, LifecyclePolicy, Worker

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def add_domain(store: Store, name: str, due: datetime = NOW) -> int:
    """A domain its account owns, proven before per-account proof (so the shared target, the
    verdicts' default, still proves it)."""
    with store.session() as session:
        owner = Account(name=f"owner of {name}")
        session.add(owner)
        session.flush()
        domain = Domain(
            name=name,
            unicode_name=name,
            registrable=name,
            next_attempt_at=due,
            problems=[],
            account_id=owner.id,
            proof="legacy",
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
        # The CA not answering needs nobody: the certificate waits, it has not failed.
        assert domain.cert_state == CertState.WAITING_FOR_CA
        assert domain.failure_class == FailureClass.CA_UNAVAILABLE
        assert domain.next_attempt_at is not None
        assert domain.next_attempt_at >= clock.now + timedelta(seconds=60)
        assert "tries again by itself at" in domain.problems[0]["fix"]
        kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
    assert kinds == ["dns_not_ready", "dns_ok", "waiting_for_ca"]


async def test_a_ca_outage_fails_only_once_it_outlasts_the_short_retries(store: Store) -> None:
    clock = Clock()

    async def dns_check(name: str) -> DnsVerdict:
        return DnsVerdict(DnsState.OK)

    async def obtain(domain_id: int) -> None:
        raise IssuanceFailure(FailureClass.CA_UNAVAILABLE, "The CA did not answer.")

    domain_id = add_domain(store, "outage.shop.test")
    worker = Worker(store, dns_check, obtain, clock=clock)
    states = []
    for _ in range(4):
        await worker.run_until_idle()
        with store.session() as session:
            domain = session.get(Domain, domain_id)
            assert domain is not None and domain.next_attempt_at is not None
            states.append(domain.cert_state)
            clock.now = domain.next_attempt_at
    assert states == [CertState.WAITING_FOR_CA] * 3 + [CertState.FAILED]


async def test_a_rejection_by_the_ca_fails_at_once(store: Store) -> None:
    async def dns_check(name: str) -> DnsVerdict:
        return DnsVerdict(DnsState.OK)

    async def obtain(domain_id: int) -> None:
        raise IssuanceFailure(FailureClass.CA_REJECTED, "The CA refused.")

    domain_id = add_domain(store, "refused.shop.test")
    await Worker(store, dns_check, obtain, clock=Clock()).run_until_idle()
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None and domain.cert_state == CertState.FAILED


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


def add_secured_domain(store: Store, name: str, lifetime: timedelta, renew_at: datetime) -> int:
    domain_id = add_domain(store, name)
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        cert = Certificate(
            domain_id=domain_id,
            chain_pem="-",
            key_encrypted=b"-",
            serial="01",
            issuer="Test CA",
            not_before=NOW,
            not_after=NOW + lifetime,
            fingerprint_sha256="0" * 64,
            renew_at=renew_at,
            ari_next_check_at=NOW + timedelta(days=365),
        )
        session.add(cert)
        session.flush()
        domain.current_certificate_id = cert.id
        domain.cert_state = CertState.ACTIVE
        domain.dns_state = DnsState.OK
    return domain_id


def state_of(store: Store, domain_id: int) -> Domain:
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        session.expunge(domain)
        return domain


async def test_moved_then_back_then_moved_for_good(store: Store) -> None:
    clock = Clock()
    verdict = {"now": DnsVerdict(DnsState.OK)}
    renewals: list[int] = []

    async def dns_check(_: str) -> DnsVerdict:
        return verdict["now"]

    async def obtain(domain_id: int) -> None:
        renewals.append(domain_id)

    domain_id = add_secured_domain(
        store, "m.shop.test", timedelta(days=90), renew_at=NOW + timedelta(days=60)
    )
    policy = LifecyclePolicy(release_after=timedelta(days=7))
    worker = Worker(store, dns_check, obtain, clock=clock, policy=policy)

    verdict["now"] = DnsVerdict(DnsState.POINTS_ELSEWHERE, [{"code": "c", "message": "m"}])
    await worker.run_until_idle()
    moved = state_of(store, domain_id)
    assert moved.dns_state == DnsState.MOVED and moved.cert_state == CertState.ACTIVE
    assert moved.moved_since == NOW and moved.wanted

    verdict["now"] = DnsVerdict(DnsState.OK)
    clock.now = moved.next_attempt_at or NOW
    await worker.run_until_idle()
    back = state_of(store, domain_id)
    assert back.dns_state == DnsState.OK and back.moved_since is None

    verdict["now"] = DnsVerdict(DnsState.POINTS_ELSEWHERE, [{"code": "c", "message": "m"}])
    clock.now = back.next_attempt_at or NOW
    for _ in range(400):  # bounded: hourly re-checks for a week
        await worker.run_until_idle()
        current = state_of(store, domain_id)
        if not current.wanted or current.next_attempt_at is None:
            break
        clock.now = current.next_attempt_at
    released = state_of(store, domain_id)
    assert not released.wanted and released.next_attempt_at is None
    # Released: nobody's any more, and the links made before end for good.
    assert released.account_id is None and released.link_epoch == 1
    assert renewals == []  # never renewed while pointing elsewhere
    with store.session() as session:
        kinds = session.scalars(
            select(Event.kind).where(Event.domain_id == domain_id).order_by(Event.id)
        ).all()
    assert kinds == ["moved", "dns_back", "moved", "released"]


async def test_failing_renewal_becomes_expiring_then_expired(store: Store) -> None:
    clock = Clock()

    async def dns_check(_: str) -> DnsVerdict:
        return DnsVerdict(DnsState.OK)

    async def obtain(_: int) -> None:
        raise IssuanceFailure(FailureClass.CA_UNAVAILABLE, "The CA did not answer.")

    lifetime = timedelta(days=6)
    domain_id = add_secured_domain(store, "e.shop.test", lifetime, renew_at=NOW + timedelta(days=3))
    worker = Worker(store, dns_check, obtain, clock=clock)
    seen = []
    clock.now = NOW + timedelta(days=3)
    for _ in range(50):
        await worker.run_until_idle()
        current = state_of(store, domain_id)
        seen.append(current.cert_state)
        if current.cert_state == CertState.EXPIRED or current.next_attempt_at is None:
            break
        clock.now = current.next_attempt_at
    # A quarter of a 6-day lifetime is the warning time for this short certificate.
    assert CertState.EXPIRING in seen and seen[-1] == CertState.EXPIRED
    assert seen.index(CertState.EXPIRING) > 0  # not expiring the moment renewal is due


async def test_a_rate_limit_waits_for_the_ca_and_says_until_when(store: Store) -> None:
    from linkcert.domains import domain_status

    clock = Clock()

    async def dns_check(name: str) -> DnsVerdict:
        return DnsVerdict(DnsState.OK)

    async def obtain(domain_id: int) -> None:
        raise IssuanceFailure(FailureClass.RATE_LIMITED, "Too many certificates.", 3600.0)

    add_domain(store, "limited.shop.test")
    await Worker(store, dns_check, obtain, clock=clock).run_until_idle()
    status = domain_status(store, "limited.shop.test")
    assert status.cert_state == CertState.WAITING_FOR_CA
    assert status.next_attempt_at is not None
    assert status.next_attempt_at >= NOW + timedelta(hours=1)
    note = status.note(NOW)
    assert note is not None
    assert note.startswith("The certificate authority asked us to wait (a rate limit); ")
    assert "the next attempt is in 1 hour" in note
