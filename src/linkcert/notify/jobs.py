"""A claimed delivery as the senders see it: plain values read in one short transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from linkcert.redact import shown_url
from linkcert.store.models import Delivery, Notification


@dataclass(frozen=True)
class NotificationView:
    public_id: str
    kind: str
    domain: str
    account_id: int | None
    account_name: str | None
    message: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: Notification) -> NotificationView:
        return cls(
            public_id=row.public_id,
            kind=row.kind,
            domain=row.domain_name,
            account_id=row.account_id,
            account_name=row.account_name,
            message=row.message,
            data=dict(row.data or {}),
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class DeliveryJob:
    id: int
    channel: str
    target: str
    attempts: int  # before this one
    created_at: datetime
    notification: NotificationView
    # An account's event endpoint: its id and encrypted signing secret.
    endpoint_id: int | None = None
    endpoint_secret: bytes | None = None

    @classmethod
    def of(cls, row: Delivery) -> DeliveryJob:
        endpoint = row.endpoint
        return cls(
            id=row.id,
            channel=row.channel,
            target=row.target,
            attempts=row.attempts,
            created_at=row.created_at,
            notification=NotificationView.of(row.notification),
            endpoint_id=row.endpoint_id,
            endpoint_secret=endpoint.secret_encrypted if endpoint is not None else None,
        )


@dataclass(frozen=True)
class Attempt:
    """How one try went. `permanent` failures are not retried (say, a mailbox that does not
    exist); everything else is, on the retry schedule."""

    delivered: bool
    error: str | None = None
    permanent: bool = False

    @classmethod
    def ok(cls) -> Attempt:
        return cls(True)

    @classmethod
    def failed(cls, error: str, *, permanent: bool = False) -> Attempt:
        return cls(False, error, permanent)


def shown_target(channel: str, target: str) -> str:
    """The target as logs and listings show it: a webhook URL without credentials, query or
    path past its first segment, where receivers carry their tokens."""
    if channel != "webhook":
        return target
    return shown_url(target)
