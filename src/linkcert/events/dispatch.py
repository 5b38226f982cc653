"""Event batches for accounts' webhook endpoints, through the notification outbox.

One process at a time (the `webhooks` cursor's lease) reads the events after the cursor and
turns those of accounts with endpoints into notifications of type `link_events` holding at
most `event_webhook_batch` events each, one per account and domain, with one delivery per
endpoint; the cursor moves in the same transaction, so a batch is written exactly once. The
delivery loop then sends them like any alert: signed (with the endpoint's own secret),
retried on the usual schedule, logged in `GET /api/v1/deliveries`. It looks every
`poll_interval` seconds, so an event waits about a second at most before its batch is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import select

from linkcert.events.store import advance_cursor, claim_cursor, event_json, list_events
from linkcert.notify.kinds import NotificationKind
from linkcert.store import Account, AccountWebhook, Store, utcnow
from linkcert.store.models import Delivery, Notification

log = logging.getLogger("linkcert.events.dispatch")

CURSOR = "webhooks"
READ = 2000
LEASE = timedelta(seconds=30)


def dispatch_once(store: Store, owner: str, batch_size: int) -> int:
    """Make the batches for the events after the cursor (up to READ of them); return how
    many events were read, 0 when there was nothing to do or another process holds the lease.
    """
    after = claim_cursor(store, CURSOR, owner, LEASE)
    if after is None:
        return 0
    now = utcnow()
    with store.session() as session:
        rows = list_events(session, after, READ)
        if not rows:
            return 0
        accounts = {row.account_id for row in rows if row.account_id is not None}
        endpoints: dict[int, list[AccountWebhook]] = defaultdict(list)
        for endpoint in session.scalars(
            select(AccountWebhook).where(AccountWebhook.account_id.in_(accounts))
        ):
            endpoints[endpoint.account_id].append(endpoint)
        names: dict[int, str] = {
            account_id: name
            for account_id, name in session.execute(
                select(Account.id, Account.name).where(Account.id.in_(accounts))
            )
        }
        groups: dict[tuple[int, str], list[dict[str, object]]] = defaultdict(list)
        for row in rows:
            if row.account_id in endpoints:
                groups[row.account_id, row.domain].append(event_json(row))
        for (account_id, domain), events in groups.items():
            for start in range(0, len(events), batch_size):
                chunk = events[start : start + batch_size]
                notification = Notification(
                    public_id="evb_" + secrets.token_hex(12),
                    kind=NotificationKind.LINK_EVENTS.value,
                    domain_id=None,
                    domain_name=domain,
                    account_id=account_id,
                    account_name=names.get(account_id),
                    message=f"{len(chunk)} click and open events",
                    data={"events": chunk},
                    dedup_key=None,
                    created_at=now,
                )
                session.add(notification)
                session.flush()
                for endpoint in endpoints[account_id]:
                    session.add(
                        Delivery(
                            notification_id=notification.id,
                            channel="webhook",
                            target=endpoint.url,
                            endpoint_id=endpoint.id,
                            status="pending",
                            attempts=0,
                            next_attempt_at=now,
                            created_at=now,
                            updated_at=now,
                        )
                    )
        if not advance_cursor(session, CURSOR, owner, rows[-1].id):
            session.rollback()  # the lease went to another process: it makes these batches
            return 0
        return len(rows)


async def run_dispatch(
    store: Store, batch_size: int, stop: asyncio.Event, poll_interval: float = 0.5
) -> None:
    owner = f"{socket.gethostname()}:{os.getpid()}:webhooks"
    while not stop.is_set():
        read = 0
        try:
            read = await asyncio.to_thread(dispatch_once, store, owner, batch_size)
        except Exception:
            log.exception("making event batches failed; retrying")
        if read >= READ:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_interval)
