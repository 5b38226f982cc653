"""What linkcert tells people about, whom it tells, and how often it may repeat itself.

The rules live here as data so that docs/alerts.md, the delivery code and the tests read the
same table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from linkcert.states import FailureClass


class NotificationKind(StrEnum):
    """The events people are told about; the value is the webhook `type`."""

    SECURED = "secured"
    RENEWAL_FAILED = "renewal_failed"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    MOVED = "moved"
    RELEASED = "released"
    REVOKED = "revoked"
    BRAND_REQUESTED = "brand_requested"
    LINK_EVENTS = "link_events"  # a batch of click and open events, to an account's endpoints


class Audience(StrEnum):
    """Who reads an email: the account's contacts, the operators, the deliverability team."""

    ACCOUNT = "account"
    OPERATOR = "operator"
    DELIVERABILITY = "deliverability"


# Email audiences per kind. Webhooks receive every kind: programs filter by `type` themselves.
# Operators hear only of what can hurt many customers or needs a person on the platform side,
# so that 100,000 domains being secured do not bury the one that is about to expire.
EMAIL_AUDIENCES: dict[NotificationKind, frozenset[Audience]] = {
    NotificationKind.SECURED: frozenset({Audience.ACCOUNT}),
    NotificationKind.RENEWAL_FAILED: frozenset({Audience.ACCOUNT}),
    NotificationKind.EXPIRING: frozenset({Audience.ACCOUNT, Audience.OPERATOR}),
    NotificationKind.EXPIRED: frozenset({Audience.ACCOUNT, Audience.OPERATOR}),
    NotificationKind.MOVED: frozenset({Audience.ACCOUNT}),
    NotificationKind.RELEASED: frozenset({Audience.ACCOUNT}),
    NotificationKind.REVOKED: frozenset({Audience.ACCOUNT, Audience.OPERATOR}),
    NotificationKind.BRAND_REQUESTED: frozenset({Audience.DELIVERABILITY}),
    NotificationKind.LINK_EVENTS: frozenset(),
}

# Failures the customer cannot fix: the CA, its limits or linkcert itself. Operators are told
# of these renewal failures too.
PLATFORM_FAILURES = frozenset(
    {
        FailureClass.CA_UNAVAILABLE,
        FailureClass.RATE_LIMITED,
        FailureClass.CA_REJECTED,
        FailureClass.DCV_UPDATE_FAILED,  # the platform's delegation zone
        FailureClass.INTERNAL,
    }
)


def is_platform_failure(data: Mapping[str, Any]) -> bool:
    return data.get("failure") in PLATFORM_FAILURES


def email_audiences(
    kind: NotificationKind, data: Mapping[str, Any], *, brand: bool
) -> frozenset[Audience]:
    """Who gets an email about this notification."""
    audiences = set(EMAIL_AUDIENCES[kind])
    if kind is NotificationKind.RENEWAL_FAILED and is_platform_failure(data):
        audiences.add(Audience.OPERATOR)
    # Brand domains are run by the deliverability team: they hear what the customer hears.
    if brand and Audience.ACCOUNT in audiences:
        audiences.add(Audience.DELIVERABILITY)
    return frozenset(audiences)


MAX_DEDUP_KEY = 200


def dedup_key(
    kind: NotificationKind, domain: str, data: Mapping[str, Any], now: datetime
) -> str | None:
    """The key that makes a repeat of this notification a no-op, or None to always send.

    Keys carry their window: a calendar day (UTC) for "at most once a day", the certificate's
    serial for "once per certificate", a threshold for "once per threshold".
    """
    day = f"{now:%Y-%m-%d}"
    serial = str(data.get("serial") or "")
    match kind:
        case NotificationKind.SECURED:
            key = f"{kind}:{domain}:{serial}" if serial else None
        case NotificationKind.EXPIRING:
            key = f"{kind}:{domain}:{serial}:{data.get('threshold', '')}"
        case NotificationKind.EXPIRED:
            key = f"{kind}:{domain}:{serial}"
        case NotificationKind.REVOKED:
            key = f"{kind}:{domain}:{serial or day}"
        case _:
            # renewal_failed, moved, released, brand_requested: once per domain per day, so a
            # flapping DNS record or a failure retried every minute cannot flood anyone.
            key = f"{kind}:{domain}:{day}"
    if key is not None and len(key) > MAX_DEDUP_KEY:
        key = f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key
