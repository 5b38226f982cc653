"""The delivery log: every email and webhook delivery with how it went, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from linkcert.notify.jobs import shown_target
from linkcert.store import Store
from linkcert.store.models import Delivery, Notification

STATUSES = ("pending", "delivered", "failed")
CHANNELS = ("email", "webhook")


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    event_id: str
    type: str
    domain: str
    account: str | None
    channel: str
    target: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "event_id": self.event_id,
            "type": self.type,
            "domain": self.domain,
            "account": self.account,
            "channel": self.channel,
            "target": self.target,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "next_attempt_at": iso(self.next_attempt_at),
            "delivered_at": iso(self.delivered_at),
            "created_at": iso(self.created_at),
        }


def list_deliveries(
    store: Store,
    *,
    status: str | None = None,
    channel: str | None = None,
    domain: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[DeliveryRecord]:
    """Deliveries newest first, optionally filtered, `limit` at a time below the id `before`."""
    query = (
        select(Delivery, Notification)
        .join(Notification, Notification.id == Delivery.notification_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(Delivery.status == status)
    if channel is not None:
        query = query.where(Delivery.channel == channel)
    if domain is not None:
        query = query.where(Notification.domain_name == domain.strip().rstrip(".").lower())
    if before is not None:
        query = query.where(Delivery.id < before)
    with store.session() as session:
        return [
            DeliveryRecord(
                id=delivery.id,
                event_id=notification.public_id,
                type=notification.kind,
                domain=notification.domain_name,
                account=notification.account_name,
                channel=delivery.channel,
                target=shown_target(delivery.channel, delivery.target),
                status=delivery.status,
                attempts=delivery.attempts,
                last_error=delivery.last_error,
                next_attempt_at=delivery.next_attempt_at,
                delivered_at=delivery.delivered_at,
                created_at=delivery.created_at,
            )
            for delivery, notification in session.execute(query).all()
        ]
