"""Persistence: SQLAlchemy models, Alembic migrations, engines for SQLite and PostgreSQL."""

from linkcert.store.db import Store, StoreError
from linkcert.store.models import (
    Account,
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
    Link,
    Order,
    TicketKey,
    WebSession,
    utcnow,
)

__all__ = [
    "Account",
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
    "Link",
    "Order",
    "Store",
    "StoreError",
    "TicketKey",
    "WebSession",
    "utcnow",
]
