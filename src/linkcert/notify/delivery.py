"""The delivery loop: claim due deliveries, send them, write down how it went.

Several processes may run the loop on one database. A delivery is claimed by writing a lease
(owner and expiry) on its row in a single UPDATE whose candidates are selected `FOR UPDATE SKIP
LOCKED` on PostgreSQL (SQLite serializes writers), the same pattern as the worker's domain
leases. A process that dies mid-send leaves a lease that expires, and the delivery is tried
again: receivers may see an event twice in that case, and tell by its `id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from linkcert import counters
from linkcert.config import Settings
from linkcert.keys import MasterKeys
from linkcert.notify.email import EmailSender, SmtpSettings
from linkcert.notify.jobs import Attempt, DeliveryJob, shown_target
from linkcert.notify.outbox import EMAIL, WEBHOOK
from linkcert.notify.retry import RetrySchedule
from linkcert.notify.webhooks import WebhookSender
from linkcert.store import Store
from linkcert.store.claims import claim_rows
from linkcert.store.models import Delivery, utcnow

log = logging.getLogger("linkcert.notify")

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

DEFAULT_SCHEDULE = RetrySchedule()

# Longer than any one send may take (SMTP and webhook timeouts are capped well below it).
DEFAULT_LEASE = timedelta(minutes=10)


class Sender(Protocol):
    """Sends one delivery of its channel; never raises for a failed send, returns Attempt."""

    channel: str

    async def send(self, job: DeliveryJob, now: datetime) -> Attempt: ...

    async def aclose(self) -> None: ...


def senders_from_settings(settings: Settings, keys: MasterKeys | None = None) -> dict[str, Sender]:
    """The senders the settings configure; `keys` open accounts' endpoint secrets."""
    senders: dict[str, Sender] = {}
    smtp = SmtpSettings.from_settings(settings)
    if smtp is not None:
        senders[EMAIL] = EmailSender(smtp)
    secret = settings.webhook_secret
    # Always there for accounts' event endpoints; operator alert webhooks need the secret.
    senders[WEBHOOK] = WebhookSender(
        secret.get_secret_value() if secret is not None else None,
        timeout=settings.webhook_timeout,
        keys=keys,
        allow_private=settings.webhook_allow_private_addresses,
        ca_bundle=str(settings.webhook_ca_bundle) if settings.webhook_ca_bundle else None,
    )
    return senders


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_due(
    store: Store, owner: str, now: datetime, limit: int, lease: timedelta = DEFAULT_LEASE
) -> list[DeliveryJob]:
    """Lease up to `limit` due deliveries and return them, oldest due first."""
    with store.session() as session:
        ids = claim_rows(
            session,
            Delivery,
            [Delivery.status == PENDING, Delivery.next_attempt_at <= now],
            limit,
            owner,
            now,
            lease,
        )
        if not ids:
            return []
        rows = session.scalars(
            select(Delivery)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .options(selectinload(Delivery.notification), selectinload(Delivery.endpoint))
        ).all()
        return [DeliveryJob.of(row) for row in rows]


def record_attempt(
    store: Store,
    job: DeliveryJob,
    attempt: Attempt,
    owner: str,
    now: datetime,
    schedule: RetrySchedule,
    rng: random.Random | None = None,
) -> str | None:
    """Write the outcome of one try and release the lease; return the delivery's status.

    None if the lease was lost meanwhile (another process owns the row now): its outcome wins.
    """
    with store.session() as session:
        row = session.scalar(
            select(Delivery).where(Delivery.id == job.id, Delivery.lease_owner == owner)
        )
        if row is None:
            return None
        row.attempts += 1
        row.lease_owner = None
        row.lease_until = None
        row.updated_at = now
        if attempt.delivered:
            row.status = DELIVERED
            row.delivered_at = now
            row.next_attempt_at = None
            return row.status
        row.last_error = (attempt.error or "failed")[:2000]
        retry_at = (
            None
            if attempt.permanent
            else schedule.next_attempt(row.attempts, row.created_at, now, rng)
        )
        if retry_at is None:
            row.status = FAILED
            row.next_attempt_at = None
        else:
            row.next_attempt_at = retry_at
        return row.status


def next_due(store: Store, now: datetime) -> datetime | None:
    """The earliest scheduled attempt of a pending, unclaimed delivery (for the loop's sleep)."""
    free = or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)
    with store.session() as session:
        value: datetime | None = session.scalar(
            select(func.min(Delivery.next_attempt_at)).where(Delivery.status == PENDING, free)
        )
        return value


class DeliveryRunner:
    """Claims and sends due deliveries, a batch at a time."""

    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        *,
        owner: str | None = None,
        schedule: RetrySchedule = DEFAULT_SCHEDULE,
        batch: int = 20,
        lease: timedelta = DEFAULT_LEASE,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.senders = dict(senders)
        self.owner = owner or default_owner()
        self.schedule = schedule
        self.batch = batch
        self.lease = lease
        self.rng = rng

    async def deliver_due(self, now: datetime) -> int:
        """Send what is due at `now`; return how many deliveries were tried."""
        jobs = await asyncio.to_thread(
            claim_due, self.store, self.owner, now, self.batch, self.lease
        )
        if jobs:
            await asyncio.gather(*(self._deliver(job, now) for job in jobs))
        return len(jobs)

    async def _deliver(self, job: DeliveryJob, now: datetime) -> None:
        attempt = await self._try(job, now)
        status = await asyncio.to_thread(
            record_attempt, self.store, job, attempt, self.owner, now, self.schedule, self.rng
        )
        counters.count_delivery(job.channel, "delivered" if attempt.delivered else "failed")
        where = f"{job.channel} to {shown_target(job.channel, job.target)}"
        if status == FAILED:
            counters.count_delivery(job.channel, "given_up")
            log.warning(
                "gave up on delivery %s (%s %s, %s) after %s attempts: %s",
                job.id,
                job.notification.kind,
                job.notification.domain,
                where,
                job.attempts + 1,
                attempt.error,
            )
        elif not attempt.delivered:
            log.info("delivery %s (%s) failed, will retry: %s", job.id, where, attempt.error)

    async def _try(self, job: DeliveryJob, now: datetime) -> Attempt:
        sender = self.senders.get(job.channel)
        if sender is None:
            setting = "smtp_host and smtp_from" if job.channel == EMAIL else "webhook_secret"
            return Attempt.failed(f"{job.channel} is not configured: set {setting}")
        try:
            return await sender.send(job, now)
        except Exception as exc:
            # A bug in a sender must not stop the loop or lose the delivery: retry it later.
            log.exception("sending delivery %s failed unexpectedly", job.id)
            return Attempt.failed(f"internal error: {type(exc).__name__}")

    async def aclose(self) -> None:
        for sender in self.senders.values():
            await sender.aclose()


async def run_deliveries(
    store: Store,
    settings: Settings,
    stop: asyncio.Event,
    *,
    senders: Mapping[str, Sender] | None = None,
    clock: Callable[[], datetime] = utcnow,
    poll_interval: float = 2.0,
    owner: str | None = None,
    batch: int = 20,
    schedule: RetrySchedule = DEFAULT_SCHEDULE,
    keys: MasterKeys | None = None,
) -> None:
    """Send due deliveries until `stop` is set.

    Deliveries are written by other processes too, so there is nothing to wake this loop:
    it looks again every `poll_interval` seconds (a cheap indexed query), sooner when a
    retry is due sooner, and at once while there is a backlog.
    """
    runner = DeliveryRunner(
        store,
        senders if senders is not None else senders_from_settings(settings, keys),
        owner=owner,
        batch=batch,
        schedule=schedule,
    )
    log.info("delivery loop started (%s)", ", ".join(sorted(runner.senders)) or "no channels")
    try:
        while not stop.is_set():
            tried = 0
            try:
                tried = await runner.deliver_due(clock())
            except Exception:
                # The store may be briefly unavailable: keep going.
                log.exception("delivery pass failed; retrying")
            if tried >= runner.batch:
                continue  # a backlog: no pause between batches
            await _sleep(store, stop, clock, poll_interval)
    finally:
        await runner.aclose()


# Never spin: rows due but claimed by a transaction that has not committed yet look due.
MIN_SLEEP = 0.05


async def _sleep(
    store: Store, stop: asyncio.Event, clock: Callable[[], datetime], poll_interval: float
) -> None:
    timeout = poll_interval
    now = clock()
    try:
        due = await asyncio.to_thread(next_due, store, now)
    except Exception:
        due = None
    if due is not None:
        timeout = max(MIN_SLEEP, min(timeout, (due - now).total_seconds()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)
