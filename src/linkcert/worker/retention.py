"""Clicks are kept `click_retention_days`, and the domains' history (`events`)
`history_retention_days`; then the workers delete them, oldest first, in batches.

Clicks share the database with keys and certificates; without a bound they would grow for as
long as links are followed. Each pass deletes what is past retention in batches of a few
thousand rows, each its own short transaction, so that the edges' click writes and the other
work of the store never wait long behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from linkcert.counters import count_clicks_pruned
from linkcert.store import Click, Event, Store, utcnow

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
    total = 0
    while True:
        deleted = await asyncio.to_thread(prune_clicks_batch, store, before, batch)
        total += deleted
        count_clicks_pruned(deleted)
        if deleted < batch or (stop is not None and stop.is_set()):
            break
        await asyncio.sleep(pause)
    if total:
        log.info("deleted %d clicks recorded before %s", total, f"{before:%Y-%m-%d %H:%M} UTC")
    return total


async def keep_clicks_pruned(
    store: Store, retention_days: float, stop: asyncio.Event, interval: float = PRUNE_INTERVAL
) -> None:
    """Prune at start and then every `interval` seconds until `stop`; 0 days keeps clicks."""
    if retention_days <= 0:
        return
    while not stop.is_set():
        try:
            await prune_clicks(store, retention_days, stop=stop)
        except Exception as exc:
            log.warning("pruning old clicks failed, trying again later: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


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
    total = 0
    while True:
        deleted, more = await asyncio.to_thread(prune_history_batch, store, before, batch)
        total += deleted
        if not more or (stop is not None and stop.is_set()):
            break
        await asyncio.sleep(pause)
    if total:
        log.info("deleted %d history events recorded before %s", total, f"{before:%Y-%m-%d} UTC")
    return total


async def keep_history_pruned(
    store: Store, retention_days: float, stop: asyncio.Event, interval: float = PRUNE_INTERVAL
) -> None:
    """Prune the domains' history every `interval` seconds until `stop`; 0 days keeps it."""
    if retention_days <= 0:
        return
    while not stop.is_set():
        try:
            await prune_history(store, retention_days, stop=stop)
        except Exception as exc:
            log.warning("pruning old history events failed, trying again later: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
