"""The tables linkcert keeps. Everything the worker and the edge know lives here.

Data flows one way: the API writes accounts and domains; the worker moves a domain through its
states, writing orders, challenges, certificates and events; the edge reads certificates and
challenges. Times are stored and returned as timezone-aware UTC on every engine.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Ids are 32-bit integer columns; a larger number in a request could only fail in the database.
MAX_ID = 2_147_483_647

# The two kinds of API token (`api_tokens.kind`).
ACCOUNT_TOKEN = "account"  # noqa: S105  (a kind, not a secret)
OPERATOR_TOKEN = "operator"  # noqa: S105


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_dns_label() -> str:
    """A fresh account DNS label: 80 random bits in lowercase base32 (16 letters and digits),
    a valid DNS label that cannot be guessed from anything about the account."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def new_dcv_secret() -> str:
    """A fresh per-account secret for delegated DNS-01 labels (256 random bits, base32)."""
    return base64.b32encode(secrets.token_bytes(32)).decode("ascii").rstrip("=").lower()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always aware UTC in Python, whatever the engine keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        value = value.astimezone(UTC)
        # SQLite keeps text; drop the offset so that comparisons sort as text correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Account(Base):
    """A customer account of the email platform."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    contact_emails: Mapped[list[Any]] = mapped_column(default=list)
    # The account's own DNS label: its CNAME target is `<dns_label>.<platform target>` and its
    # TXT proof `linkcert=<dns_label>` (see ownership.py). Random, so unguessable; stored, so
    # stable whatever secrets rotate.
    # (Nullable in the schema only so that the upgrade could add it to existing rows; every
    # row has one.)
    dns_label: Mapped[str] = mapped_column(
        String(32), nullable=True, unique=True, index=True, default=new_dns_label
    )
    # The secret the account's DNS-01 delegation labels are made with (ownership.dcv_label):
    # never shown, so that nobody can work out the label of another account's name. Stored,
    # so that the labels stay the same whatever keys rotate. (Nullable in the schema only so
    # that the upgrade could add it to existing rows.)
    dcv_secret: Mapped[str] = mapped_column(String(64), nullable=True, default=new_dcv_secret)
    # Proxy mode: this account's own origins (`http(s)://HOST:PORT`), for platforms with
    # regional trackers; None: the edge's `edge_upstreams`. Set by operators only.
    upstreams: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    tracking_domain_id: Mapped[int | None] = mapped_column(
        ForeignKey("domains.id", use_alter=True, name="fk_accounts_tracking_domain"),
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tracking_domain: Mapped[Domain | None] = relationship(foreign_keys=[tracking_domain_id])


class Domain(Base):
    """A link tracking domain and where it stands: its DNS state and certificate state.

    The two states are kept apart on purpose: "your DNS is wrong" and "your certificate is
    being issued" are different facts, and the customer needs to see both.
    """

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)  # ASCII (A-label) form
    unicode_name: Mapped[str] = mapped_column(String(253))
    registrable: Mapped[str] = mapped_column(String(253), index=True)
    # The account that DNS proved owns the name (None while it is only claimed, and once it is
    # deleted or released). Other accounts' claims wait in `domain_claims`.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(16), default="customer")  # customer | brand
    # How the owner was proven: dns (the account's own CNAME target or TXT record), operator
    # (a brand domain an operator approved), legacy (verified under the shared target before
    # per-account proof existed; the shared target still counts for it).
    proof: Mapped[str | None] = mapped_column(String(16))
    # Bound into every tracked link's signature: raised when the name is deleted, released or
    # changes owner, so that the links made before stop for good.
    link_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Whether linkcert should keep this domain secured (false once an account moves away).
    wanted: Mapped[bool] = mapped_column(Boolean, default=True)
    dns_state: Mapped[str] = mapped_column(String(32), default="pending")
    cert_state: Mapped[str] = mapped_column(String(32), default="none")
    # The owner's `_acme-challenge` delegation as last checked (states.DcvState); None when
    # the platform offers none (no `dcv_zone`) or it was not checked yet.
    dcv_state: Mapped[str | None] = mapped_column(String(16), default=None)
    # ... and the target its `_acme-challenge` CNAME named then (None without one).
    dcv_found: Mapped[str | None] = mapped_column(String(253), default=None)
    problems: Mapped[list[Any]] = mapped_column(default=list)
    # The worker's schedule: when to look at this domain next, and why it waits.
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failure_class: Mapped[str | None] = mapped_column(String(32))
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column()
    current_certificate_id: Mapped[int | None] = mapped_column(
        ForeignKey("certificates.id", use_alter=True, name="fk_domains_current_certificate"),
    )
    dns_checked_at: Mapped[datetime | None] = mapped_column()
    moved_since: Mapped[datetime | None] = mapped_column()
    # An operator asked to delete the domain: revoke its certificate, erase its keys.
    delete_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    account: Mapped[Account | None] = relationship(foreign_keys=[account_id])
    current_certificate: Mapped[Certificate | None] = relationship(
        foreign_keys=[current_certificate_id]
    )

    __table_args__ = (
        Index("ix_domains_due", "next_attempt_at"),
        # The edge looks up domains by their current certificate every second (new ones).
        Index("ix_domains_current_certificate", "current_certificate_id"),
        # The lists (API, console, CLI) go in name order, a page at a time from the last name
        # seen: each filter has an index that starts with it and goes on by name, so a page is
        # one range scan whatever the fleet's size. (account_id first also serves the lookups
        # of an account's domains.)
        Index("ix_domains_account_name", "account_id", "name"),
        Index("ix_domains_dns_state_name", "dns_state", "name"),
        Index("ix_domains_cert_state_name", "cert_state", "name"),
        Index("ix_domains_failure_name", "failure_class", "name"),
    )


class DomainClaim(Base):
    """An account's claim on a name that DNS has not proven to be the account's (yet).

    Several accounts may claim one name; the one whose record DNS shows becomes the owner
    (`Domain.account_id`) and the other claims are marked lost. Unproven claims expire.
    """

    __tablename__ = "domain_claims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | lost
    problems: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()

    account: Mapped[Account] = relationship(foreign_keys=[account_id])

    __table_args__ = (UniqueConstraint("domain_id", "account_id", name="uq_domain_claims"),)


class Certificate(Base):
    """An issued (or uploaded) certificate with its encrypted private key."""

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    chain_pem: Mapped[str] = mapped_column(Text)
    key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)  # erased on delete
    serial: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(400))
    not_before: Mapped[datetime] = mapped_column()
    not_after: Mapped[datetime] = mapped_column()
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    source: Mapped[str] = mapped_column(String(16), default="acme")  # acme | upload
    # An upload that chains only to the operator's private CA bundle (`upload_ca_bundle`), not
    # to the system's public roots: browsers without that root warn.
    private_ca: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    # When to renew: chosen once in the CA's ARI window, or by the share of lifetime left.
    renew_at: Mapped[datetime | None] = mapped_column()
    ari_next_check_at: Mapped[datetime | None] = mapped_column()

    # By end date, with the id: the expiry metrics and the console's expiring filter read end
    # dates from the index alone, never the rows (whose chains make them large).
    # By order: deleting an order past retention checks that no certificate names it.
    __table_args__ = (
        Index("ix_certificates_not_after_id", "not_after", "id"),
        Index("ix_certificates_order_id", "order_id"),
    )


class AcmeAccount(Base):
    """The one ACME account linkcert uses for all customers, per CA directory."""

    __tablename__ = "acme_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    directory_url: Mapped[str] = mapped_column(String(500), unique=True)
    uri: Mapped[str | None] = mapped_column(String(500))
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    contact: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Order(Base):
    """An ACME order, kept step by step so that a restarted worker resumes it."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    acme_account_id: Mapped[int] = mapped_column(ForeignKey("acme_accounts.id"))
    url: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(32), default="new")
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)  # erased on delete
    csr_pem: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        # Every edge process reads the open orders (and their challenges) once a second.
        Index(
            "ix_orders_open",
            "domain_id",
            sqlite_where=text("finished_at IS NULL"),
            postgresql_where=text("finished_at IS NULL"),
        ),
    )


class Challenge(Base):
    """An HTTP-01 answer any edge process can serve: token -> key authorization."""

    __tablename__ = "challenges"

    token: Mapped[str] = mapped_column(String(255), primary_key=True)
    key_authorization: Mapped[str] = mapped_column(String(512))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """The append-only history of a domain: every state change with its reason."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    dns_state: Mapped[str] = mapped_column(String(32))
    cert_state: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_events_domain_at", "domain_id", "id"),)


class Link(Base):
    """A tracked link; its token carries the id and destination, signed."""

    __tablename__ = "links"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    destination: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Click(Base):
    """A recorded click or open, written in batches by the edge."""

    __tablename__ = "clicks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253))
    link_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8), default="click")
    at: Mapped[datetime] = mapped_column()

    # ix_clicks_at: the worker prunes clicks past their retention, oldest first.
    __table_args__ = (Index("ix_clicks_link", "link_id"), Index("ix_clicks_at", "at"))


class LinkEvent(Base):
    """A counted click or open, as the platform's consumers read it (docs/events.md).

    Written by the edges in batches; `id` is the consumers' cursor. Rows are committed in id
    order (see linkcert.events.store), so a reader that has seen id N never later finds a new
    row below N.
    """

    __tablename__ = "link_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253))
    account_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))  # click | open
    data: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    link_id: Mapped[int | None] = mapped_column(BigInteger)
    destination: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column()
    minted_at: Mapped[int | None] = mapped_column(BigInteger)  # Unix seconds, from the token
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(600))
    machine: Mapped[str | None] = mapped_column(String(64))
    token_version: Mapped[int] = mapped_column(Integer, default=2)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)

    # The API reads an account's events by id; retention deletes oldest first by id.
    __table_args__ = (Index("ix_link_events_account", "account_id", "id"),)


class EventSpoolSegment(Base):
    """How far the event writer has inserted one edge spool segment (linkcert.tracking.spool).

    Moved in the same transaction as the events it inserts, so that a writer that dies never
    inserts a spooled event twice nor skips one; removed once the segment's file is deleted."""

    __tablename__ = "event_spool_segments"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventCursor(Base):
    """How far a consumer that linkcert feeds itself (the broker, the webhook batches) has got."""

    __tablename__ = "event_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # One process feeds a consumer at a time: the one holding the lease.
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column()


class AccountWebhook(Base):
    """An account's endpoint for batches of its click and open events.

    The signing secret is encrypted under the master key; it is shown once, when the endpoint
    is saved.
    """

    __tablename__ = "account_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token for the REST API: one account's, or an operator's (no account).

    Only the SHA-256 of the token is kept; the token itself is shown once, when it is made.
    The prefix is there so that people can tell their tokens apart in a listing.
    """

    __tablename__ = "api_tokens"
    # The kind is stated, never inferred from a missing account: a token whose account link
    # were lost (a future ON DELETE SET NULL, a bad manual fix) must not become an operator's.
    __table_args__ = (
        CheckConstraint(
            "(kind = 'operator' AND account_id IS NULL)"
            " OR (kind = 'account' AND account_id IS NOT NULL)",
            name="ck_api_tokens_kind",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default=ACCOUNT_TOKEN)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class WebSession(Base):
    """A page session: the browser's cookie names it, logging out deletes it.

    Only the SHA-256 of the cookie's session id is kept, so a copy of the database opens no
    session. The CSRF secret of the session's forms lives here too.
    """

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RateBucket(Base):
    """A token bucket of a CA rate limit, shared by every worker (see `worker/ratelimit.py`).

    `tokens` is the balance at `updated_at`; what has flowed back since is computed when the
    bucket is read. `burst` and `refill_seconds` are the limit it was last spent under, so that
    its balance can be reported without the configuration.

    `waiting_until` is the last turn handed to a refused operation: the next refusal is told to
    come back one refill interval after it, so that refused domains come back one at a time
    instead of all together at the next token.
    """

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[datetime] = mapped_column()
    burst: Mapped[float] = mapped_column(Double)
    refill_seconds: Mapped[float] = mapped_column(Double)
    waiting_until: Mapped[datetime | None] = mapped_column()


class TicketKey(Base):
    """A TLS session ticket key, one per period, shared by every edge (see `ticketkeys.py`).

    Workers create each period's key ahead of time; edges read the current one, so that a
    ticket one edge process hands out is accepted by all the others. The key is secret (it
    protects resumed sessions) and is kept encrypted under the master key like private keys.
    """

    __tablename__ = "tls_ticket_keys"

    period: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """Something a person must hear about (secured, renewal failed, expiring, ...).

    Written in the same transaction as the change it reports, with one Delivery per recipient,
    so that a crash can neither lose the alert nor send one for a change that was rolled back.
    `dedup_key` is unique: a repeat inside its window (say, a second renewal failure the same
    day) is not written at all.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    domain_id: Mapped[int | None] = mapped_column(
        ForeignKey("domains.id", ondelete="SET NULL"), index=True
    )
    domain_name: Mapped[str] = mapped_column(String(253))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    account_name: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One notification to one recipient (an email address or a webhook URL), and its log."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("notifications.id", ondelete="CASCADE"),
        index=True,
    )
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    target: Mapped[str] = mapped_column(String(2048))
    # An account's event endpoint (its own secret and address checks), None for alert targets.
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("account_webhooks.id", ondelete="SET NULL", name="fk_deliveries_endpoint")
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    notification: Mapped[Notification] = relationship()
    endpoint: Mapped[AccountWebhook | None] = relationship()

    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)


class BrandRequest(Base):
    """An account's request for a brand link tracking domain, which the deliverability team
    provisions by hand: approved (then secured like any other domain) or completed with an
    uploaded certificate, or rejected.
    """

    __tablename__ = "brand_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    domain: Mapped[str] = mapped_column(String(253))  # ASCII (A-label) form
    note: Mapped[str] = mapped_column(Text, default="")
    # requested | approved | uploaded | rejected
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()
    # Who decided, as the operator's token or CLI user is named: for the audit trail only.
    decided_by: Mapped[str | None] = mapped_column(String(200))
