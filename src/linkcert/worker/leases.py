"""Row leases: two workers never work on the same domain at once.

A worker claims due domains by writing its id and a lease expiry on their rows. On PostgreSQL
the candidates are selected `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint sets
without waiting on each other; on SQLite the database serializes writers. A lease that expires
(its worker died) makes the domain claimable again, and the next worker resumes its order.

Leases are short (`worker_lease_seconds`, 30 s by default) and a heartbeat extends them while a
pass runs, so a dead worker's domains are taken up within seconds. A process that knows it is
the only holder of its identity (the single-process `serve` on SQLite, which holds a lock file
for it) also gives back its own stale leases as it starts: they belong to its previous run.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from linkcert.store import Domain, Store
from linkcert.store.claims import claim_rows

DEFAULT_LEASE = timedelta(seconds=30)

# The worker holding the lease of the domain being worked on, set by the worker for each pass.
# asyncio.to_thread copies it into threads, so a step deep in issuance can check the lease
# before a step that must happen once (placing or finalizing an order).
HOLDER: ContextVar[str | None] = ContextVar("linkcert_lease_holder", default=None)


class LeaseLost(Exception):
    """Another worker took this domain over (our lease ran out): stop without a trace."""


def claim_due(
    store: Store, worker_id: str, now: datetime, limit: int, lease: timedelta = DEFAULT_LEASE
) -> list[int]:
    """Lease up to `limit` domains whose next attempt is due; return their ids."""
    with store.session() as session:
        return claim_rows(
            session,
            Domain,
            [Domain.next_attempt_at <= now],
            limit,
            worker_id,
            now,
            lease,
        )


def extend(store: Store, worker_id: str, domain_id: int, until: datetime) -> bool:
    """Extend our lease; False when it was lost (expired and taken by another worker)."""
    with store.session() as session:
        result = session.execute(
            update(Domain)
            .where(Domain.id == domain_id, Domain.lease_owner == worker_id)
            .values(lease_until=until)
            .returning(Domain.id)
        )
        return result.first() is not None


def release(store: Store, worker_id: str, domain_id: int) -> None:
    with store.session() as session:
        session.execute(
            update(Domain)
            .where(Domain.id == domain_id, Domain.lease_owner == worker_id)
            .values(lease_owner=None, lease_until=None)
        )


def reclaim_own(store: Store, worker_id: str) -> int:
    """Free every lease held under `worker_id`, left by an earlier run of this same identity;
    return how many. Only for an identity that no other live process can hold."""
    with store.session() as session:
        result = session.execute(
            update(Domain)
            .where(Domain.lease_owner == worker_id)
            .values(lease_owner=None, lease_until=None)
            .returning(Domain.id)
        )
        return len(result.all())


def next_due(store: Store, now: datetime) -> datetime | None:
    """The earliest scheduled attempt among unleased domains (for the worker's sleep)."""
    with store.session() as session:
        free = or_(Domain.lease_until.is_(None), Domain.lease_until < now)
        value: datetime | None = session.scalar(
            select(func.min(Domain.next_attempt_at)).where(free)
        )
        return value


def check_held(store: Store, domain_id: int) -> None:
    """Raise LeaseLost unless the current pass's worker still holds the domain's lease."""
    holder = HOLDER.get()
    if holder is None:
        return  # not running under a worker (tests, one-off calls)
    with store.session() as session:
        owner = session.scalar(select(Domain.lease_owner).where(Domain.id == domain_id))
    if owner != holder:
        raise LeaseLost(f"domain {domain_id} is now leased by {owner or 'nobody'}")
