"""A wave of renewals that all fall due at once, under the CA rate limits of `pebble-bench`.

1. Off the clock, a fleet (one edge, two workers, PostgreSQL) obtains `size` certificates from
   Pebble (90-day lifetime, as Let's Encrypt's) with no limits.
2. The workers stop; every certificate is made due now (`renew_at`, `next_attempt_at`) in one
   transaction, and two new workers start with `acme_rate_limits = "pebble-bench"`: 60 new
   orders per minute per account (a burst of 60, then one a second).
3. The clock runs until every domain has its renewed certificate. Reported: the wave's length
   against what the budget allows, orders per window against the budget, the CA's bucket
   replayed over the order times (would it have refused any?), how many passes were turned
   away to wait, and how the renewed certificates' next renewal times are spread.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bench import lab, order_pace
from bench.linkcert_fleet import Fleet, follow, release_wave, secured_count, wave_names
from linkcert.ca_limits import NEW_ORDERS, PEBBLE_BENCH_LIMITS
from linkcert.store import Certificate, Domain, Event, Store, signals, utcnow

LIFETIME_SECONDS = 90 * 86400
WINDOWS = (1, 10, 60, 300)


def run(size: int) -> None:
    budget = PEBBLE_BENCH_LIMITS[NEW_ORDERS]
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="bench-renewal-wave-"))
        stack.callback(shutil.rmtree, workdir, True)
        loopback = lab.Loopback(workdir, certificate_validity_seconds=LIFETIME_SECONDS)
        stack.callback(loopback.close)
        database_url = stack.enter_context(lab.postgres_schema("bench_renewal_wave"))
        store = Store(database_url)
        stack.callback(store.close)
        store.migrate()
        names = wave_names(size, "renew")
        for name in names:
            loopback.point(name)
        fleet = Fleet(loopback.settings(database_url, workdir), workdir)
        stack.callback(fleet.stop)

        print(
            f"\nRenewal wave: {size} certificates due at once, limits `pebble-bench` "
            f"(new orders {budget}), 2 workers + 1 edge on PostgreSQL"
        )
        fleet.start_edge()
        # At most 8 orders in flight per worker while setting up: Pebble 2.4's in-memory store
        # can deadlock under many concurrent new orders and finalizations (it takes its own
        # lock and each authorization's in opposite orders; seen stalling waves of 1,000 for
        # good after 20-40 s). The measured wave below is paced by the rate limit anyway.
        fleet.start_workers(2, tag="-issue", LINKCERT_WORKER_CONCURRENCY="8")
        release_wave(store, names)
        issued = follow(store, size, time.monotonic(), timeout=max(600.0, size * 1.0))
        fleet.stop_workers()
        if issued.done < size:
            raise SystemExit(f"setup: only {issued.done} of {size} certificates were issued")
        print(f"  setup (off the clock, no limits): {size} certificates in {issued.elapsed:.0f} s")

        fleet.workers = []
        fleet.start_workers(2, tag="-renew", LINKCERT_ACME_RATE_LIMITS="pebble-bench")
        released_at = make_all_due(store)
        released = time.monotonic()
        limit = (size / budget.burst) * budget.period * 1.5 + 300
        renewed = follow(
            store, size, released, timeout=limit, count=lambda s: renewed_since(s, released_at)
        )
        times = fleet.order_times()
        report(store, released_at, renewed.done, renewed.elapsed, size, times, fleet)


def make_all_due(store: Store) -> datetime:
    """Every certificate due for renewal now, in one transaction; the workers are told."""
    now = utcnow()
    with store.session() as session:
        session.execute(update(Certificate).values(renew_at=now))
        session.execute(update(Domain).values(next_attempt_at=now))
        signals.announce(session, signals.WORK, "")
    return now


def renewed_since(store: Store, since: datetime) -> int:
    with store.session() as session:
        value = session.scalar(
            select(func.count()).select_from(Certificate).where(Certificate.created_at >= since)
        )
    return int(value or 0)


def report(
    store: Store,
    since: datetime,
    done: int,
    elapsed: float,
    size: int,
    times: list[datetime],
    fleet: Fleet,
) -> None:
    budget = PEBBLE_BENCH_LIMITS[NEW_ORDERS]
    refill = budget.refill_seconds
    pace = order_pace.measure(times, budget.burst, refill, WINDOWS)
    ideal = max(0.0, (size - budget.burst) * refill)
    print(
        f"  renewed: {done} of {size} in {elapsed:.0f} s; the budget allows it in "
        f"{ideal:.0f} s at best ({budget.burst} at once, then one every {refill:g} s)"
    )
    print(f"  orders at the CA: {pace.orders} over {pace.span:.0f} s")
    for window in WINDOWS:
        print(
            f"    busiest {window:>3} s: {pace.peak[window]:>4} orders "
            f"(budget allows {order_pace.allowed(budget.burst, refill, window)})"
        )
    print(
        f"  CA's bucket replayed: lowest balance {pace.lowest_balance:.2f} tokens, "
        f"{pace.refusals} orders it would have refused (rateLimited)"
    )
    print(f"  rateLimited in worker logs: {fleet.log_count('rateLimited')}")
    with store.session() as session:
        waits = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.kind == "waiting_for_budget", Event.at >= since)
        )
        per_domain = session.execute(
            select(Certificate.domain_id, func.count()).group_by(Certificate.domain_id)
        ).all()
        renew_at = session.execute(
            select(Certificate.renew_at, Certificate.not_before).where(
                Certificate.created_at >= since
            )
        ).all()
    print(
        f"  passes turned away to wait for the budget: {waits} "
        f"({(waits or 0) / max(done, 1):.1f} per renewal)"
    )
    twice = sum(1 for _, count in per_domain if count != 2)
    print(f"  domains without exactly two certificates: {twice}")
    offsets = [(r - nb) / timedelta(days=1) for r, nb in renew_at if r is not None]
    if offsets:
        print(
            f"  next renewal of the renewed certificates, days after issue: "
            f"{min(offsets):.1f} to {max(offsets):.1f} (stdev {statistics.pstdev(offsets):.2f})"
        )
    print(f"  secured at the end: {secured_count(store)}")
