"""Persistence: SQLAlchemy models, Alembic migrations, engines for SQLite and PostgreSQL.

The names below load SQLAlchemy and the models on first use, not when the package is
imported: `linkcert.store.schema` and `linkcert.store.reader` serve the short commands
without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linkcert.store.db import Store, StoreError
    from linkcert.store.models import (
        Account,
        AccountWebhook,
        AcmeAccount,
        ApiToken,
        Base,
        BrandRequest,
        Certificate,
        Challenge,
        Click,
        Domain,
        DomainClaim,
        Event,
        EventCursor,
        EventSpoolSegment,
        Link,
        LinkEvent,
        Order,
        TicketKey,
        WebSession,
        utcnow,
    )

__all__ = [
    "Account",
    "AccountWebhook",
    "AcmeAccount",
    "ApiToken",
    "Base",
    "BrandRequest",
    "Certificate",
    "Challenge",
    "Click",
    "Domain",
    "DomainClaim",
    "Event",
    "EventCursor",
    "EventSpoolSegment",
    "Link",
    "LinkEvent",
    "Order",
    "Store",
    "StoreError",
    "TicketKey",
    "WebSession",
    "utcnow",
]

_FROM_DB = {"Store", "StoreError"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(
            "linkcert.store.db" if name in _FROM_DB else "linkcert.store.models"
        )
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
