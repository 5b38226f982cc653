"""Persistence: SQLAlchemy models, Alembic migrations, engines for SQLite and PostgreSQL."""

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
    Event,
    EventCursor,
    Link,
    LinkEvent,
    Order,
    TicketKey,
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
    "Event",
    "EventCursor",
    "Link",
    "LinkEvent",
    "Order",
    "Store",
    "StoreError",
    "TicketKey",
    "utcnow",
]
