"""Clicks are kept `click_retention_days`, then deleted by the workers, oldest first, in batches.

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
from linkcert.store import Click, Store, utcnow

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
