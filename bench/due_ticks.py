"""What finding due work costs in the store, timed per tick.

A worker tick leases up to `limit` due domains (`claim_due`) and asks when the next one is due
(`next_due`). Between ticks the leases are given back (untimed), so every tick finds the same
due work. An edge's tick is its once-a-second look for certificates stored since its last look
(`StoreFeeds._newer_than`), here with a few new ones. Each cost should follow the work found,
not the size of the fleet.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from sqlalchemy import func, select, update

from linkcert.edge import CertificateCache
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.service.feeds import StoreFeeds
from linkcert.store import Domain, Store, utcnow
from linkcert.testbed.statements import recorded_statements
from linkcert.worker import leases

WORKER_ID = "bench-renewal"


@dataclass(frozen=True)
class TickCost:
    claim_ms: float  # medians
    next_due_ms: float
    tick_ms: float
    p90_tick_ms: float
    claimed: int
    edge_ms: float  # the edge's look for new certificates


NEW_CERTIFICATES = 5  # stored since the edge's last look


def measure(
    store: Store, limit: int, repetitions: int, fleet_size: int, warmup: int = 3
) -> TickCost:
    feeds = StoreFeeds(store, MasterKeys.parse(generate_master_key("bench")), CertificateCache())
    last_seen = fleet_size - NEW_CERTIFICATES  # certificate ids run from 1 to the fleet size
    claims: list[float] = []
    nexts: list[float] = []
    edges: list[float] = []
    claimed = 0
    for round_ in range(warmup + repetitions):
        started = time.perf_counter()
        ids = leases.claim_due(store, WORKER_ID, utcnow(), limit)
        middle = time.perf_counter()
        leases.next_due(store, utcnow())
        ended = time.perf_counter()
        _release_all(store)
        edge_started = time.perf_counter()
        # The edge's own query, called directly: that is what each edge process runs.
        feeds._newer_than(last_seen)
        edge_ended = time.perf_counter()
        if round_ >= warmup:
            claims.append((middle - started) * 1000)
            nexts.append((ended - middle) * 1000)
            edges.append((edge_ended - edge_started) * 1000)
            claimed = len(ids)
    ticks = sorted(c + n for c, n in zip(claims, nexts, strict=True))
    return TickCost(
        claim_ms=statistics.median(claims),
        next_due_ms=statistics.median(nexts),
        tick_ms=statistics.median(ticks),
        p90_tick_ms=ticks[int(0.9 * (len(ticks) - 1))],
        claimed=claimed,
        edge_ms=statistics.median(edges),
    )


def _release_all(store: Store) -> None:
    with store.session() as session:
        session.execute(
            update(Domain)
            .where(Domain.lease_owner == WORKER_ID)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def plans(store: Store, limit: int, fleet_size: int) -> list[str]:
    """The query plans of the ticks' statements, as the engine runs them.

    On PostgreSQL, EXPLAIN ANALYZE inside a transaction that is rolled back (the claim is an
    UPDATE); on SQLite, EXPLAIN QUERY PLAN.
    """
    feeds = StoreFeeds(store, MasterKeys.parse(generate_master_key("bench")), CertificateCache())
    with recorded_statements(store, this_thread=False) as seen:
        leases.claim_due(store, WORKER_ID, utcnow(), limit)
        leases.next_due(store, utcnow())
        feeds._newer_than(fleet_size - NEW_CERTIFICATES)
    _release_all(store)
    statements = [(s, p) for s, p in seen if "domains" in s]
    out: list[str] = []
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        prefix = (
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
            if store.dialect == "postgresql"
            else "EXPLAIN QUERY PLAN "
        )
        for statement, parameters in statements:
            cursor.execute(prefix + statement, parameters)
            rows = cursor.fetchall()
            lines = [str(row[0]) if len(row) == 1 else str(row[-1]) for row in rows]
            out.append(" ".join(statement.split()) + "\n    " + "\n    ".join(lines))
        raw.rollback()
    _release_all(store)
    return out


def count_due(store: Store) -> int:
    with store.session() as session:
        value = session.scalar(
            select(func.count()).select_from(Domain).where(Domain.next_attempt_at <= utcnow())
        )
    return int(value or 0)
