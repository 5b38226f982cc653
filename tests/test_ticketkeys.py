"""The edges' shared TLS ticket keys in the store: made ahead, encrypted, pruned, followed."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from linkcert.keys import DecryptionError, MasterKeys, generate_master_key
from linkcert.keystore import rotate_all
from linkcert.store import Store, TicketKey
from linkcert.testbed.waiting import wait_for_async
from linkcert.ticketkeys import (
    KEY_BYTES,
    PERIOD,
    current_ticket_key,
    ensure_ticket_keys,
    follow_ticket_keys,
    keep_ticket_keys,
    period_of,
)

NOW = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)


OLD_MASTER_KEY = generate_master_key("k1")


@pytest.fixture
def keys() -> MasterKeys:
    return MasterKeys.parse(OLD_MASTER_KEY)


def _periods(store: Store) -> list[int]:
    with store.session() as session:
        return sorted(session.scalars(select(TicketKey.period)))


def test_workers_make_this_and_the_next_periods_keys_once(store: Store, keys: MasterKeys) -> None:
    assert current_ticket_key(store, keys, NOW) is None
    ensure_ticket_keys(store, keys, NOW)
    current = current_ticket_key(store, keys, NOW)
    upcoming = current_ticket_key(store, keys, NOW + PERIOD)
    assert current is not None and upcoming is not None
    assert len(current) == len(upcoming) == KEY_BYTES
    assert current != upcoming
    assert _periods(store) == [period_of(NOW), period_of(NOW) + 1]
    ensure_ticket_keys(store, keys, NOW)  # again: nothing changes
    assert current_ticket_key(store, keys, NOW) == current
    # Kept encrypted, bound to its period.
    with store.session() as session:
        blob = session.scalar(
            select(TicketKey.key_encrypted).where(TicketKey.period == period_of(NOW))
        )
    assert blob is not None and current not in blob


def test_old_periods_are_dropped_and_the_previous_one_kept(store: Store, keys: MasterKeys) -> None:
    for periods_later in (0, 1, 3):
        ensure_ticket_keys(store, keys, NOW + periods_later * PERIOD)
    start = period_of(NOW)
    assert _periods(store) == [start + 2, start + 3, start + 4]


def test_workers_racing_agree_on_one_key(store: Store, keys: MasterKeys) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def make() -> None:
        barrier.wait()
        try:
            ensure_ticket_keys(store, keys, NOW)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(_periods(store)) == 2


def test_a_key_under_another_master_key_does_not_decrypt(store: Store, keys: MasterKeys) -> None:
    ensure_ticket_keys(store, keys, NOW)
    with pytest.raises(DecryptionError):
        current_ticket_key(store, MasterKeys.parse(generate_master_key("k2")), NOW)


async def test_an_edge_follows_the_key_and_a_worker_keeps_it(
    store: Store, keys: MasterKeys
) -> None:
    used: list[bytes | None] = []
    stop = asyncio.Event()
    edge = asyncio.ensure_future(follow_ticket_keys(store, keys, used.append, stop, 0.05))
    await asyncio.sleep(0.2)
    assert used == [None]  # no worker yet: no shared key, told once
    worker = asyncio.ensure_future(keep_ticket_keys(store, keys, stop, 0.05))
    await wait_for_async(lambda: len(used) == 2, "the edge told of the worker's key")
    stop.set()
    await asyncio.gather(edge, worker)
    assert used[1] == current_ticket_key(store, keys)


def test_rotating_the_master_key_re_encrypts_ticket_keys(store: Store, keys: MasterKeys) -> None:
    ensure_ticket_keys(store, keys, NOW)
    before = current_ticket_key(store, keys, NOW)
    new = generate_master_key("k2")
    both = MasterKeys.parse(new + "," + OLD_MASTER_KEY)
    assert rotate_all(store, both) == 2
    assert rotate_all(store, both) == 0
    assert current_ticket_key(store, MasterKeys.parse(new), NOW) == before
