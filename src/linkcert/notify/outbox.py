"""Writing notifications: one row for the event and one delivery row per recipient.

`Notifier.emit()` runs inside the caller's transaction (the worker's, as it changes a domain's
state), so the alert is committed exactly when the change is: a crash before the commit loses
both, a crash after it leaves deliveries that the delivery loop sends later. This is the outbox
pattern; nothing here touches the network.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from linkcert import counters
from linkcert.config import Settings
from linkcert.notify.kinds import Audience, NotificationKind, dedup_key, email_audiences
from linkcert.store.inserts import insert_unless_present
from linkcert.store.models import Account, Certificate, Delivery, Domain, Notification, utcnow

log = logging.getLogger("linkcert.notify")

EMAIL = "email"
WEBHOOK = "webhook"


@dataclass(frozen=True)
class Recipients:
    """The addresses that do not come from an account: operators, deliverability, webhooks."""

    email_enabled: bool = False
    operator_emails: tuple[str, ...] = ()
    deliverability_emails: tuple[str, ...] = ()
    webhook_urls: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Recipients:
        operators = _addresses(settings.operator_email)
        return cls(
            email_enabled=bool(settings.smtp_host),
            operator_emails=operators,
            deliverability_emails=_addresses(settings.deliverability_email) or operators,
            webhook_urls=tuple(settings.webhook_urls),
        )


def _addresses(setting: str | None) -> tuple[str, ...]:
    # One address or several separated by commas, as people write them in settings.
    if not setting:
        return ()
    return tuple(part.strip() for part in setting.split(",") if part.strip())


class Notifier:
    """Records notifications for the delivery loop to send.

    notifier = Notifier.from_settings(settings)
    with store.session() as session:
        ...change the domain...
        notifier.emit(session, NotificationKind.SECURED, domain, message="...")
    """

    def __init__(self, recipients: Recipients, clock: Callable[[], datetime] = utcnow) -> None:
        self.recipients = recipients
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], datetime] = utcnow) -> Notifier:
        return cls(Recipients.from_settings(settings), clock)

    def emit(
        self,
        session: Session,
        kind: NotificationKind | str,
        domain: Domain | str,
        *,
        message: str,
        details: Mapping[str, Any] | None = None,
        account: Account | None = None,
    ) -> Notification | None:
        """Record a notification and its deliveries in `session`'s transaction.

        `domain` is the Domain row (its states, problems, next attempt and current certificate
        are copied into the notification) or, for a name without a row yet, the name itself.
        `details` adds to or overrides those facts; see docs/alerts.md for the keys messages
        read (`failure`, `serial`, `reason`, ...). Returns None when the notification repeats
        one still inside its window (see `dedup_key`), in which case nothing is written.
        """
        kind = NotificationKind(kind)
        now = self.clock()
        if isinstance(domain, Domain):
            name = domain.name
            facts = domain_facts(session, domain)
            account = account or (
                session.get(Account, domain.account_id) if domain.account_id else None
            )
            brand = domain.kind == "brand"
        else:
            name, facts, brand = domain, {"unicode_name": domain}, False
        data = {**facts, **plain(dict(details or {}))}
        key = dedup_key(kind, name, data, now)
        notification_id = _insert_unless_repeated(
            session,
            public_id="evt_" + secrets.token_hex(12),
            kind=kind.value,
            domain_id=domain.id if isinstance(domain, Domain) else None,
            domain_name=name,
            account_id=account.id if account else None,
            account_name=account.name if account else None,
            message=message,
            data=data,
            dedup_key=key,
            created_at=now,
        )
        if notification_id is None:
            log.debug("%s for %s repeats one already sent (%s); not sent again", kind, name, key)
            return None
        contacts = list(account.contact_emails or []) if account else []
        for channel, target in self._targets(kind, data, contacts, brand=brand):
            session.add(
                Delivery(
                    notification_id=notification_id,
                    channel=channel,
                    target=target,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        session.flush()
        # Counted when written; a transaction rolled back afterwards over-counts by one, which
        # is harmless for a rate and cheaper than a hook on commit.
        counters.count_notification(kind.value)
        return session.get(Notification, notification_id)

    def _targets(
        self,
        kind: NotificationKind,
        data: Mapping[str, Any],
        contacts: Iterable[str],
        *,
        brand: bool,
    ) -> list[tuple[str, str]]:
        targets: list[tuple[str, str]] = []
        if self.recipients.email_enabled:
            audiences = email_audiences(kind, data, brand=brand)
            emails: list[str] = []
            if Audience.ACCOUNT in audiences:
                emails.extend(contacts)
            if Audience.OPERATOR in audiences:
                emails.extend(self.recipients.operator_emails)
            if Audience.DELIVERABILITY in audiences:
                emails.extend(self.recipients.deliverability_emails)
            targets.extend((EMAIL, address) for address in _unique_addresses(emails))
        targets.extend((WEBHOOK, url) for url in self.recipients.webhook_urls)
        return targets


def emit(
    session: Session,
    kind: NotificationKind | str,
    domain: Domain | str,
    *,
    message: str,
    details: Mapping[str, Any] | None = None,
    settings: Settings,
    account: Account | None = None,
) -> Notification | None:
    """`Notifier.emit()` for a caller that has the settings at hand rather than a Notifier."""
    return Notifier.from_settings(settings).emit(
        session, kind, domain, message=message, details=details, account=account
    )


def domain_facts(session: Session, domain: Domain) -> dict[str, Any]:
    """What a message needs to know about the domain now, as JSON-ready values."""
    facts: dict[str, Any] = {
        "unicode_name": domain.unicode_name,
        "dns_state": domain.dns_state,
        "cert_state": domain.cert_state,
        "wanted": domain.wanted,
        "problems": list(domain.problems or []),
        "next_attempt_at": plain(domain.next_attempt_at) if domain.wanted else None,
    }
    # By id, not through the relationship: the caller may just have set a new certificate id.
    cert = (
        session.get(Certificate, domain.current_certificate_id)
        if domain.current_certificate_id
        else None
    )
    if cert is not None:
        facts.update(
            serial=cert.serial,
            issuer=cert.issuer,
            not_before=plain(cert.not_before),
            not_after=plain(cert.not_after),
        )
    return facts


def plain(value: Any) -> Any:
    """`value` as JSON-ready data: times in ISO 8601, enums as their values."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _unique_addresses(addresses: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    unique: list[str] = []
    for address in addresses:
        folded = address.strip().lower()
        if folded and folded not in seen:
            seen.add(folded)
            unique.append(address.strip())
    return unique


def _insert_unless_repeated(session: Session, **values: Any) -> int | None:
    """Insert the notification; None if its dedup key is already taken.

    ON CONFLICT DO NOTHING rather than catching IntegrityError: a failed insert would abort
    the caller's whole transaction on PostgreSQL, and with it the state change it reports.
    Two workers racing on the same key therefore write one row between them.
    """
    statement = insert_unless_present(session, Notification, values, ["dedup_key"])
    row = session.execute(statement.returning(Notification.id)).first()
    return None if row is None else int(row[0])
