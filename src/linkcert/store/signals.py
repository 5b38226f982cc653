"""Telling other processes that something changed, through PostgreSQL's LISTEN/NOTIFY.

A fleet of workers and edges shares one database. When a domain is saved (work is due now)
or a certificate is stored or removed, a notification on a channel reaches every process that
listens, within milliseconds, so a worker starts at once and every edge serves a new
certificate within a second. Notifications are sent when the transaction commits, so a
listener never hears of a change it cannot yet read.

On SQLite (one machine, usually one process) there is no such mechanism: callers keep their
short polls, which are the safety net on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("linkcert.signals")

WORK = "linkcert_work"  # a domain is due now (payload: domain id)
CERTIFICATES = "linkcert_certificates"  # a domain's certificate changed (payload: domain name)
CHALLENGES = "linkcert_challenges"  # a domain's open order or challenges changed (payload: name)


def announce(session: Session, channel: str, payload: str = "") -> None:
    """Send `payload` on `channel` when the session's transaction commits (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
    )


def libpq_conninfo(sqlalchemy_url: str) -> str:
    """The database URL in the form psycopg connects with (driver name removed)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def listen(
    sqlalchemy_url: str,
    channels: Iterable[str],
    on_notify: Callable[[str, str], None],
    stop: asyncio.Event,
    *,
    reconnect_delay: float = 1.0,
    on_listening: Callable[[bool], None] | None = None,
) -> None:
    """Call `on_notify(channel, payload)` for every notification until `stop` is set.

    Reconnects after a lost connection (PostgreSQL restarted, network blip); every reconnect
    also calls `on_notify(channel, "")` on each channel, since notifications sent while we were
    away are lost and the listener should catch up by reading the store. `on_listening(True)`
    is called once the channels are listened to (on every connection), `on_listening(False)`
    when the connection is lost: what was announced in between the caller never heard.
    """
    import psycopg  # only listeners need the driver itself; short commands do not load it

    wanted = list(channels)
    conninfo = libpq_conninfo(sqlalchemy_url)
    first = True
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                for channel in wanted:
                    await conn.execute(f'LISTEN "{channel}"')
                if not first:
                    for channel in wanted:
                        on_notify(channel, "")
                first = False
                if on_listening is not None:
                    on_listening(True)
                await _pump(conn, on_notify, stop)
        except (psycopg.Error, OSError) as exc:
            if on_listening is not None:
                on_listening(False)
            if stop.is_set():
                return
            log.warning("listening for changes failed, reconnecting: %s", str(exc).strip())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=reconnect_delay)


async def _pump(
    conn: psycopg.AsyncConnection[object],
    on_notify: Callable[[str, str], None],
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        # A bounded wait, so that `stop` is noticed and a dead connection raises soon.
        async for notice in conn.notifies(timeout=1.0):
            on_notify(notice.channel, notice.payload)
        await conn.execute("SELECT 1")
