"""The domains' history (`events`) is kept `history_retention_days`, then deleted in batches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from linkcert.config import Settings
from linkcert.store import Domain, Event, Store
from linkcert.worker.retention import keep_history_pruned, prune_history

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def history(store: Store, days_ago: list[float]) -> None:
    """Events of one domain, written in the order given (ids follow it)."""
    with store.session() as session:
        domain = Domain(
            name="links.shop.test", unicode_name="links.shop.test", registrable="shop.test"
        )
        session.add(domain)
        session.flush()
        session.execute(
            insert(Event),
            [
                {
                    "domain_id": domain.id,
                    "at": NOW - timedelta(days=days),
                    "kind": "dns_ok",
                    "dns_state": "ok",
                    "cert_state": "active",
                    "message": "",
                    "detail": {},
                }
                for days in days_ago
            ],
        )


def ages(store: Store) -> list[int]:
    with store.session() as session:
        return [
            round((NOW - at).days) for at in session.scalars(select(Event.at).order_by(Event.id))
        ]


def test_the_default_keeps_a_year_and_a_bit() -> None:
    assert Settings().history_retention_days == 400


async def test_events_past_retention_go_in_batches_oldest_first(store: Store) -> None:
    history(store, [900.0 - i for i in range(25)] + [500, 401, 399, 30, 1])
    deleted = await prune_history(store, 400, batch=4, pause=0, now=NOW)
    assert deleted == 27
    assert ages(store) == [399, 30, 1]
    assert await prune_history(store, 400, batch=4, pause=0, now=NOW) == 0


async def test_a_batch_that_reaches_retention_ends_the_pass(store: Store) -> None:
    history(store, [800, 700, 10, 5, 600])  # one written late goes with its batch
    assert await prune_history(store, 400, batch=10, pause=0, now=NOW) == 3
    assert ages(store) == [10, 5]


async def test_zero_keeps_the_history_for_ever(store: Store) -> None:
    history(store, [5000, 1])
    await asyncio.wait_for(keep_history_pruned(store, 0, asyncio.Event()), timeout=5)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 2
