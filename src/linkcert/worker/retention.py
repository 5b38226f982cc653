"""Clicks are kept `click_retention_days`, the domains' history (`events`)
`history_retention_days`, and certificates no domain serves any more until
`certificate_retention_days` after they expire; then the workers delete them, oldest first, in
batches.

Clicks share the database with keys and certificates; without a bound they would grow for as
long as links are followed. Each pass deletes what is past retention in batches of a few
thousand rows, each its own short transaction, so that the edges' click writes and the other
work of the store never wait long behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from linkcert.counters import count_certificates_pruned, count_clicks_pruned
from linkcert.events.store import advance_cursor, claim_cursor, release_cursor
from linkcert.store import (
    Certificate,
    Challenge,
    Click,
    Domain,
    Event,
    EventCursor,
    Order,
    Store,
    utcnow,
)
from linkcert.worker.issuance import DCV_RECORDS

log = logging.getLogger("linkcert.worker.retention")

PRUNE_BATCH = 5_000
PRUNE_INTERVAL = 3600.0  # seconds between passes
BATCH_PAUSE = 0.05  # seconds between batches of one pass


def prune_clicks_batch(store: Store, before: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete up to `batch` of the oldest clicks recorded before `before`; returns how many."""
    oldest = select(Click.id).where(Click.at < before).order_by(Click.at).limit(batch)
    with store.session() as session:
        deleted = session.execute(delete(Click).where(Click.id.in_(oldest.scalar_subquery())))
        return int(getattr(deleted, "rowcount", 0) or 0)


async def prune_clicks(
    store: Store,
    retention_days: float,
    *,
    batch: int = PRUNE_BATCH,
    pause: float = BATCH_PAUSE,
    now: datetime | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """One pass: delete every click older than the retention, batch by batch (until `stop`)."""
    before = (now or utcnow()) - timedelta(days=retention_days)

    def one_batch() -> tuple[int, bool]:
        deleted = prune_clicks_batch(store, before, batch)
        count_clicks_pruned(deleted)
        return deleted, deleted >= batch

    total = await _in_batches(one_batch, pause, stop)
    if total:
        log.info("deleted %d clicks recorded before %s", total, f"{before:%Y-%m-%d %H:%M} UTC")
    return total


async def keep_clicks_pruned(
    store: Store, retention_days: float, stop: asyncio.Event, interval: float = PRUNE_INTERVAL
) -> None:
    """Prune at start and then every `interval` seconds until `stop`; 0 days keeps clicks."""
    await _keep_pruning(
        "old clicks",
        lambda: prune_clicks(store, retention_days, stop=stop),
        retention_days,
        stop,
        interval,
    )


# --- the domains' history --------------------------------------------------------------------


def prune_history_batch(
    store: Store, before: datetime, batch: int = PRUNE_BATCH
) -> tuple[int, bool]:
    """Delete the oldest history events up to `batch` of them, those recorded before `before`;
    returns how many, and whether more may be past retention.

    Oldest first by id (the primary key, no other index needed): ids follow the order events
    are written in, and so time. A batch that is not entirely past retention deletes what is
    and ends the pass; the rest goes in a later one.
    """
    with store.session() as session:
        oldest = session.execute(select(Event.id, Event.at).order_by(Event.id).limit(batch)).all()
        ids = [event_id for event_id, at in oldest if at < before]
        if ids:
            session.execute(delete(Event).where(Event.id.in_(ids)))
        return len(ids), len(ids) == len(oldest) == batch


async def prune_history(
    store: Store,
    retention_days: float,
    *,
    batch: int = PRUNE_BATCH,
    pause: float = BATCH_PAUSE,
    now: datetime | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """One pass: delete the history events older than the retention, batch by batch."""
    before = (now or utcnow()) - timedelta(days=retention_days)
    total = await _in_batches(lambda: prune_history_batch(store, before, batch), pause, stop)
    if total:
        log.info("deleted %d history events recorded before %s", total, f"{before:%Y-%m-%d} UTC")
    return total


async def keep_history_pruned(
    store: Store, retention_days: float, stop: asyncio.Event, interval: float = PRUNE_INTERVAL
) -> None:
    """Prune the domains' history every `interval` seconds until `stop`; 0 days keeps it."""
    await _keep_pruning(
        "old history events",
        lambda: prune_history(store, retention_days, stop=stop),
        retention_days,
        stop,
        interval,
    )


# --- certificates no domain serves any more -----------------------------------------------
#
# Every renewal stores a new certificate row (its chain and its encrypted key, about 2 KB) and
# the old one stays. A certificate is deleted once both hold:
#
# - it is no domain's current certificate: the current one is what the edges serve, whatever
#   its dates (a domain whose renewals fail keeps its expired certificate, and its state);
# - it expired more than `certificate_retention_days` ago. Until it expires a replaced
#   certificate may still be in an edge's memory, is what an operator would roll back to, and
#   is revoked with the others if the domain is deleted; the days after expiry leave time to
#   look into what was served.
#
# Its key goes with it, and with it the copy of that key its ACME order kept: the order row
# is deleted too (it served only that certificate), unless it still lists records to remove
# from the delegation zone, in which case only its key is erased. Keys of other rows (the
# current certificate, an upload that reuses a key, an open order) are never touched: each
# row holds its own encrypted copy.
#
# Orders that ended without a certificate (failed or given up) hold a key too, and a domain
# whose validations keep failing places one a day: they go once started more than the same
# number of days ago.

CERTIFICATE_BATCH = 500  # rows of about 2 KB each: 1 MB of deletes per transaction
CERTIFICATE_LEASE_NAME = "certificate_retention"
CERTIFICATE_LEASE = timedelta(minutes=5)

_NOT_CURRENT = ~exists().where(Domain.current_certificate_id == Certificate.id)

Position = tuple[datetime, int]  # (not_after, id) of the last certificate a pass looked at


def prune_certificates_batch(
    store: Store, before: datetime, batch: int = CERTIFICATE_BATCH, after: Position | None = None
) -> tuple[int, Position | None]:
    """Delete up to `batch` certificates that expired before `before` and that no domain
    serves, earliest end first from `after`; returns how many, and where the next batch
    starts (None: nothing is left past retention)."""
    query = select(Certificate.id, Certificate.not_after).where(
        Certificate.not_after < before, _NOT_CURRENT
    )
    if after is not None:
        query = query.where(
            or_(
                Certificate.not_after > after[0],
                and_(Certificate.not_after == after[0], Certificate.id > after[1]),
            )
        )
    with store.session() as session:
        found = session.execute(
            query.order_by(Certificate.not_after, Certificate.id).limit(batch)
        ).all()
        if not found:
            return 0, None
        ids = [cert_id for cert_id, _ in found]
        # The condition again in the delete itself: a certificate made current since it was
        # read (only an operator's hand does that) stays.
        gone = session.execute(
            delete(Certificate)
            .where(Certificate.id.in_(ids), _NOT_CURRENT)
            .returning(Certificate.order_id)
        ).all()
        _drop_orders(session, {order_id for (order_id,) in gone if order_id is not None})
        last_id, last_at = found[-1]
        return len(gone), ((last_at, last_id) if len(found) == batch else None)


def _drop_orders(session: Session, order_ids: set[int]) -> None:
    """The finished orders of deleted certificates that no other certificate came from."""
    if not order_ids:
        return
    orders = session.scalars(
        select(Order).where(
            Order.id.in_(order_ids),
            Order.finished_at.is_not(None),
            ~exists().where(Certificate.order_id == Order.id),
        )
    ).all()
    doomed = []
    for order in orders:
        if (order.info or {}).get(DCV_RECORDS):
            order.key_encrypted = None  # the zone's records are still to be removed
        else:
            doomed.append(order.id)
    if doomed:
        session.execute(delete(Challenge).where(Challenge.order_id.in_(doomed)))
        session.execute(delete(Order).where(Order.id.in_(doomed)))


def prune_failed_orders_batch(
    store: Store, before: datetime, owner: str, batch: int = CERTIFICATE_BATCH
) -> tuple[int, bool]:
    """Delete the ACME orders started before `before` that ended without a certificate, up
    to `batch` of them looked at from the position kept in the pass's lease row; returns how
    many went, and whether more orders that old are left to look at.

    Orders are looked at once each, in id order (the order they were started in), up to the
    first one started after `before`. An order a certificate came from goes with that
    certificate instead; one still open, or with records left to remove from the delegation
    zone, is left in place (rare: orders end within days, and the records go at the next
    attempt).
    """
    with store.session() as session:
        position = session.scalar(
            select(EventCursor.last_id).where(
                EventCursor.name == CERTIFICATE_LEASE_NAME, EventCursor.lease_owner == owner
            )
        )
        if position is None:
            return 0, False  # the lease went to another worker: its pass goes on
        rows = session.execute(
            select(Order.id, Order.created_at, Order.finished_at, Order.info)
            .where(Order.id > position)
            .order_by(Order.id)
            .limit(batch)
        ).all()
        old = []
        for row in rows:
            if row.created_at >= before:
                break
            old.append(row)
        ended = [
            row.id
            for row in old
            if row.finished_at is not None and not (row.info or {}).get(DCV_RECORDS)
        ]
        issued = set(
            session.scalars(select(Certificate.order_id).where(Certificate.order_id.in_(ended)))
        )
        doomed = [order_id for order_id in ended if order_id not in issued]
        if doomed:
            session.execute(delete(Challenge).where(Challenge.order_id.in_(doomed)))
            session.execute(delete(Order).where(Order.id.in_(doomed)))
        if old:
            advance_cursor(session, CERTIFICATE_LEASE_NAME, owner, old[-1].id)
        return len(doomed), len(old) == batch


async def prune_certificates(
    store: Store,
    retention_days: float,
    *,
    batch: int = CERTIFICATE_BATCH,
    pause: float = BATCH_PAUSE,
    now: datetime | None = None,
    stop: asyncio.Event | None = None,
    owner: str | None = None,
) -> int:
    """One pass over the certificates past retention, batch by batch, then over the orders
    that ended without a certificate, while this process holds the pass's lease (another
    worker running a pass: none here). Returns how many certificates went."""
    before = (now or utcnow()) - timedelta(days=retention_days)
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:certificate-retention"
    certificates = orders = 0
    after: Position | None = None
    certificates_left = orders_left = True
    try:
        while certificates_left or orders_left:
            # Taken, or extended, before each batch: a pass another worker runs is left to it.
            held = await asyncio.to_thread(
                claim_cursor, store, CERTIFICATE_LEASE_NAME, owner, CERTIFICATE_LEASE
            )
            if held is None:
                break
            if certificates_left:
                deleted, after = await asyncio.to_thread(
                    prune_certificates_batch, store, before, batch, after
                )
                certificates += deleted
                count_certificates_pruned(deleted)
                certificates_left = after is not None
            else:
                deleted, orders_left = await asyncio.to_thread(
                    prune_failed_orders_batch, store, before, owner, batch
                )
                orders += deleted
            if stop is not None and stop.is_set():
                break
            await asyncio.sleep(pause)
    finally:
        await asyncio.to_thread(release_cursor, store, CERTIFICATE_LEASE_NAME, owner)
    if certificates:
        log.info(
            "deleted %d certificates served by no domain that expired before %s",
            certificates,
            f"{before:%Y-%m-%d} UTC",
        )
    if orders:
        log.info(
            "deleted %d ACME orders started before %s that ended without a certificate",
            orders,
            f"{before:%Y-%m-%d} UTC",
        )
    return certificates


async def keep_certificates_pruned(
    store: Store, retention_days: float, stop: asyncio.Event, interval: float = PRUNE_INTERVAL
) -> None:
    """Prune old certificates every `interval` seconds until `stop`; 0 days keeps them."""
    await _keep_pruning(
        "old certificates",
        lambda: prune_certificates(store, retention_days, stop=stop),
        retention_days,
        stop,
        interval,
    )


async def _keep_pruning(
    what: str,
    one_pass: Callable[[], Awaitable[object]],
    retention_days: float,
    stop: asyncio.Event,
    interval: float,
) -> None:
    """Run `one_pass` at start and then every `interval` seconds until `stop`; nothing when the
    retention is 0 (keep forever). A failed pass is logged and tried again at the next turn:
    a database briefly away must not end the pruning for good."""
    if retention_days <= 0:
        return
    while not stop.is_set():
        try:
            await one_pass()
        except Exception as exc:
            log.warning("pruning %s failed, trying again later: %s", what, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def _in_batches(
    one_batch: Callable[[], tuple[int, bool]], pause: float, stop: asyncio.Event | None
) -> int:
    """Run `one_batch` (in a thread; it returns how many rows it deleted and whether more may
    be due) until nothing more is due or `stop`, pausing between batches so that a long pass
    leaves the database to others; returns the rows deleted."""
    total = 0
    while True:
        deleted, more = await asyncio.to_thread(one_batch)
        total += deleted
        if not more or (stop is not None and stop.is_set()):
            return total
        await asyncio.sleep(pause)
