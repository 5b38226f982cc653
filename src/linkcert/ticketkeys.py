"""TLS session ticket keys shared by every edge process, rotated every period.

A returning client (a second click from the same mail reader, say) resumes its TLS session
with a ticket instead of a full handshake, which costs the edge a fraction of the CPU. A ticket
is sealed with the key of the process that issued it, and behind SO_REUSEPORT and a load
balancer the next connection rarely comes back to that process: so the keys live in the store,
one per period, and every edge uses the current one.

Workers create the keys (the current period's and the next one's, so that every edge finds the
next key before it is needed) and delete those older than the previous period; edges only read
them, following the one-way flow of data. Each key is 80 random bytes (OpenSSL's ticket key
name, HMAC secret and AES key), encrypted under the master key and bound to its period.

A ticket outlives neither its period's change by much (an edge switches keys within a minute of
the period's start and OpenSSL keeps one key), nor its lifetime: a client holding a ticket of
the previous key simply makes a full handshake, as every client did before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from linkcert.edge.sslctx import TICKET_KEYS_BYTES
from linkcert.keys import DecryptionError, MasterKeys
from linkcert.keystore import ticket_key_context
from linkcert.store import Store, TicketKey
from linkcert.store.inserts import insert_unless_present

log = logging.getLogger(__name__)

PERIOD = timedelta(hours=12)
KEY_BYTES = TICKET_KEYS_BYTES  # OpenSSL's: 16 bytes of key name, 32 of HMAC, 32 of AES key
WORKER_INTERVAL = 600.0  # seconds between a worker's looks: periods are hours long
EDGE_INTERVAL = 30.0  # seconds between an edge's looks: how late it may switch keys


def period_of(moment: datetime) -> int:
    return int(moment.timestamp() // PERIOD.total_seconds())


def ensure_ticket_keys(store: Store, keys: MasterKeys, now: datetime | None = None) -> None:
    """Create this period's and the next period's keys if missing; drop those no longer used.

    Several workers may do this at once: the first insert of a period wins, the others change
    nothing.
    """
    current = period_of(now or datetime.now(UTC))
    with store.session() as session:
        present = set(
            session.scalars(
                select(TicketKey.period).where(TicketKey.period.in_((current, current + 1)))
            )
        )
        for period in (current, current + 1):
            if period not in present:
                blob = keys.encrypt(os.urandom(KEY_BYTES), ticket_key_context(period))
                values = {"period": period, "key_encrypted": blob, "created_at": datetime.now(UTC)}
                session.execute(insert_unless_present(session, TicketKey, values))
        session.execute(delete(TicketKey).where(TicketKey.period < current - 1))


def current_ticket_key(store: Store, keys: MasterKeys, now: datetime | None = None) -> bytes | None:
    """The key edges use now, or None if no worker has made one yet."""
    period = period_of(now or datetime.now(UTC))
    with store.session() as session:
        blob = session.scalar(select(TicketKey.key_encrypted).where(TicketKey.period == period))
    if blob is None:
        return None
    key = keys.decrypt(blob, ticket_key_context(period))
    if len(key) != KEY_BYTES:
        raise DecryptionError(f"the TLS ticket key of period {period} has the wrong length")
    return key


async def keep_ticket_keys(
    store: Store, keys: MasterKeys, stop: asyncio.Event, interval: float = WORKER_INTERVAL
) -> None:
    """A worker's part: keep the current and next keys in the store until `stop`."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(ensure_ticket_keys, store, keys)
        except Exception as exc:
            log.warning("could not prepare TLS ticket keys (will retry): %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def follow_ticket_keys(
    store: Store,
    keys: MasterKeys,
    use: Callable[[bytes | None], object],
    stop: asyncio.Event,
    interval: float = EDGE_INTERVAL,
) -> None:
    """An edge's part: hand `use` the current key whenever it changes, until `stop`.

    A store that cannot be read leaves the key in use as it is: resumption keeps working until
    the period ends, and full handshakes work regardless.
    """
    in_use: bytes | None = None
    first = True
    while not stop.is_set():
        try:
            key = await asyncio.to_thread(current_ticket_key, store, keys)
        except Exception as exc:
            log.warning("could not read the TLS ticket key (keeping the one in use): %s", exc)
        else:
            if first or key != in_use:
                use(key)
                if key is None and not first:
                    log.warning("no TLS ticket key for this period: session tickets are off")
                in_use, first = key, False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
