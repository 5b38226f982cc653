"""Writing events, reading them by cursor, the consumers' cursors and leases, and retention.

Ids are the cursor every consumer keeps, so they must never appear out of order: a reader that
has seen id N must never later find a new row below N. PostgreSQL hands out sequence numbers
before commit, so two edges writing at once could commit 501-1000 before 1-500; each batch
therefore takes one transaction-scoped advisory lock before it inserts, which makes batches
take their ids and commit one after the other (a few milliseconds each, once a second per
edge). SQLite writes one transaction at a time anyway.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.orm import Session

from linkcert.store import Domain, Store, utcnow
from linkcert.store.inserts import insert_unless_present
from linkcert.store.models import Delivery, EventCursor, LinkEvent, Notification
from linkcert.tracking import Click
from linkcert.tracking.machines import MAX_USER_AGENT_BYTES

log = logging.getLogger("linkcert.events")

ClientIpMode = Literal["full", "truncated", "none"]

# Any constant both engines agree on; only this module takes it.
_EVENTS_LOCK = 0x6C6B_6576  # "lkev"
MAX_PAGE = 1000


_shown_addresses: dict[tuple[str, str], str | None] = {}


def client_ip(address: str | None, mode: ClientIpMode) -> str | None:
    """The client address as `event_client_ip` says: all of it, its /24 (IPv4) or /48 (IPv6)
    network, or nothing."""
    if address is None or mode == "none":
        return None
    key = (address, mode)
    try:
        return _shown_addresses[key]
    except KeyError:
        pass
    shown = _client_ip(address, mode)
    if len(_shown_addresses) >= 65536:
        _shown_addresses.clear()
    _shown_addresses[key] = shown
    return shown


def _client_ip(address: str, mode: ClientIpMode) -> str | None:
    try:
        parsed = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if mode == "full":
        return str(parsed)
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


def _user_agent(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value[:MAX_USER_AGENT_BYTES].decode("utf-8", "replace")


_INSERT_SQL = {
    "sqlite": "INSERT INTO link_events (domain, account_id, kind, data, link_id, destination, at, "
    "minted_at, client_ip, user_agent, machine, token_version, epoch) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO link_events (domain, account_id, kind, data, link_id, destination, "
    "at, minted_at, client_ip, user_agent, machine, token_version, epoch) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
}


def event_rows(
    clicks: Sequence[Click], mode: ClientIpMode, accounts: dict[str, int | None], dialect: str
) -> list[tuple[Any, ...]]:
    """The rows to insert, as the driver takes them (in `_INSERT_SQL`'s column order).

    Written straight to the driver rather than through SQLAlchemy's parameter processing: an
    edge writes a batch every second, and that processing cost more than the insert. Times are
    what UTCDateTime stores: naive UTC text on SQLite, aware UTC on PostgreSQL."""
    sqlite = dialect == "sqlite"
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for click in clicks:
        link = click.link
        at = click.at.astimezone(UTC)
        append(
            (
                click.domain,
                accounts.get(click.domain),
                str(click.kind),
                link.data if link is not None else b"",
                click.link_id,
                link.destination if link is not None else "",
                at.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else at,
                link.minted_at if link is not None else None,
                client_ip(click.client, mode),
                _user_agent(click.user_agent),
                click.machine,
                link.version if link is not None else 1,
                link.epoch if link is not None else 0,
            )
        )
    return rows


def save_events(store: Store, clicks: Sequence[Click], mode: ClientIpMode) -> int:
    """Write a batch of clicks and opens as events, in one transaction; return how many."""
    if not clicks:
        return 0
    names = {click.domain for click in clicks}
    with store.session() as session:
        owners: dict[str, int | None] = {
            name: account_id
            for name, account_id in session.execute(
                select(Domain.name, Domain.account_id).where(Domain.name.in_(names))
            )
        }
        rows = event_rows(clicks, mode, owners, store.dialect)
        if store.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EVENTS_LOCK})
        session.connection().exec_driver_sql(_INSERT_SQL[store.dialect], rows)
    return len(rows)


def event_json(row: LinkEvent) -> dict[str, Any]:
    """An event as every consumer gets it (the API, webhook batches, the broker)."""
    data = bytes(row.data or b"")
    try:
        text_data: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text_data = None
    at = row.at.astimezone(UTC)
    since = None if row.minted_at is None else int(at.timestamp()) - row.minted_at
    return {
        "id": str(row.id),
        "domain": row.domain,
        "account_id": row.account_id,
        "kind": row.kind,
        "data": text_data,
        "data_base64": base64.b64encode(data).decode("ascii"),
        "link_id": row.link_id,
        "destination": row.destination,
        "at": at.isoformat().replace("+00:00", "Z"),
        "seconds_since_mint": since,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
        "machine": row.machine,
    }


def list_events(
    session: Session, after: int, limit: int, account_id: int | None = None
) -> list[LinkEvent]:
    """Events with an id above `after`, oldest first; only `account_id`'s when given."""
    query = select(LinkEvent).where(LinkEvent.id > after)
    if account_id is not None:
        query = query.where(LinkEvent.account_id == account_id)
    return list(session.scalars(query.order_by(LinkEvent.id).limit(min(limit, MAX_PAGE))))


# Consumers' cursors -------------------------------------------------------------------


def claim_cursor(store: Store, name: str, owner: str, lease: timedelta) -> int | None:
    """Take (or renew) the lease on consumer `name`; its last id, or None if another process
    holds it."""
    now = utcnow()
    with store.session() as session:
        session.execute(
            insert_unless_present(
                session,
                EventCursor,
                {"name": name, "last_id": 0, "updated_at": now},
                ["name"],
            )
        )
        taken = session.execute(
            update(EventCursor)
            .where(
                EventCursor.name == name,
                or_(
                    EventCursor.lease_owner.is_(None),
                    EventCursor.lease_owner == owner,
                    EventCursor.lease_until < now,
                ),
            )
            .values(lease_owner=owner, lease_until=now + lease)
            .returning(EventCursor.last_id)
        ).first()
        return None if taken is None else int(taken[0])


def advance_cursor(session: Session, name: str, owner: str, last_id: int) -> bool:
    """Move consumer `name` to `last_id` inside `session`'s transaction; False if the lease
    was lost (then nothing moves)."""
    result = session.execute(
        update(EventCursor)
        .where(EventCursor.name == name, EventCursor.lease_owner == owner)
        .values(last_id=last_id, updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def release_cursor(store: Store, name: str, owner: str) -> None:
    with store.session() as session:
        session.execute(
            update(EventCursor)
            .where(EventCursor.name == name, EventCursor.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def read_after(store: Store, after: int, limit: int) -> list[LinkEvent]:
    with store.session() as session:
        rows = list_events(session, after, limit)
        session.expunge_all()
        return rows


# Retention ----------------------------------------------------------------------------


def prune(
    store: Store, before: datetime, batch: int = 5000, max_batches: int = 1000
) -> tuple[int, int]:
    """Delete events, and notifications none of whose deliveries is still pending, older than
    `before`, `batch` rows per transaction; return (events, notifications) deleted."""
    events = notifications = 0
    # Oldest first by id (the primary key, no other index needed): ids follow writing order,
    # and so, within the edges' batching delay, time. Stops at the first batch that is not
    # entirely past retention; what is left of it goes in a later pass.
    for _ in range(max_batches):
        with store.session() as session:
            oldest = session.execute(
                select(LinkEvent.id, LinkEvent.at).order_by(LinkEvent.id).limit(batch)
            ).all()
            ids = [event_id for event_id, at in oldest if at < before]
            if ids:
                session.execute(delete(LinkEvent).where(LinkEvent.id.in_(ids)))
        events += len(ids)
        if len(ids) < batch:
            break
    for _ in range(max_batches):
        with store.session() as session:
            pending = select(Delivery.notification_id).where(Delivery.status == "pending")
            ids = list(
                session.scalars(
                    select(Notification.id)
                    .where(Notification.created_at < before, Notification.id.not_in(pending))
                    .order_by(Notification.id)
                    .limit(batch)
                )
            )
            if ids:
                session.execute(delete(Delivery).where(Delivery.notification_id.in_(ids)))
                session.execute(delete(Notification).where(Notification.id.in_(ids)))
        notifications += len(ids)
        if len(ids) < batch:
            break
    return events, notifications


def all_ids(rows: Iterable[LinkEvent]) -> list[int]:
    return [row.id for row in rows]


async def run_retention(
    store: Store, days: float, stop: asyncio.Event, interval: float = 3600.0
) -> None:
    """Prune events and finished notifications older than `days`, every `interval` seconds
    (the first pass a minute after start)."""
    wait = min(60.0, interval)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        if stop.is_set():
            return
        wait = interval
        try:
            events, notifications = await asyncio.to_thread(
                prune, store, utcnow() - timedelta(days=days)
            )
        except Exception:
            log.exception("pruning old events failed; trying again later")
            continue
        if events or notifications:
            log.info(
                "pruned %d events and %d notifications older than %g days",
                events,
                notifications,
                days,
            )
