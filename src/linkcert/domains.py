"""Accounts and their link tracking domains: what the API, the page and the CLI change.

Saving a domain only writes a row due now and an event; the worker does the rest. Nothing
here waits on DNS or the CA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from linkcert.names import NamePolicy, validate
from linkcert.states import CertState, DnsState
from linkcert.store import Account, Certificate, Domain, Event, Store, utcnow


class NotFound(LookupError):
    """No such account or domain (or not one the caller may see)."""


class Conflict(Exception):
    """The change would clash with another account's data."""


def record_event(
    session: Session, domain: Domain, kind: str, message: str = "", **detail: Any
) -> Event:
    """Append an event carrying the domain's states as they are now."""
    event = Event(
        domain_id=domain.id,
        at=utcnow(),
        kind=kind,
        dns_state=domain.dns_state,
        cert_state=domain.cert_state,
        message=message,
        detail=detail,
    )
    session.add(event)
    return event


def create_account(store: Store, name: str, emails: Sequence[str] = ()) -> Account:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("an account name takes 1 to 200 characters")
    for email in emails:
        if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
            raise ValueError(f"{email!r} is not an email address")
    with store.session() as session:
        if session.scalar(select(Account.id).where(Account.name == name)) is not None:
            raise Conflict(f"an account named {name!r} already exists")
        account = Account(name=name, contact_emails=list(emails), created_at=utcnow())
        session.add(account)
        session.flush()
        return account


def find_account(session: Session, ref: str | int) -> Account:
    """An account by id or by name."""
    account: Account | None = None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        account = session.get(Account, int(ref))
    if account is None and isinstance(ref, str):
        account = session.scalar(select(Account).where(Account.name == ref))
    if account is None:
        raise NotFound(f"no account {ref!r}")
    return account


def set_tracking_domain(
    store: Store, account_ref: str | int, name: str, policy: NamePolicy
) -> Domain:
    """Make `name` the account's link tracking domain and queue it for the worker at once.

    The previous domain, if any, stops being renewed but keeps serving the links of emails
    already sent for as long as its certificate and DNS allow.
    """
    valid = validate(name, policy)
    now = utcnow()
    with store.session() as session:
        account = find_account(session, account_ref)
        domain = session.scalar(select(Domain).where(Domain.name == valid.ascii))
        if domain is not None and domain.account_id not in (None, account.id):
            raise Conflict(f"{valid.unicode} is already in use by another account")
        previous = account.tracking_domain
        if previous is not None and previous.name != valid.ascii:
            previous.wanted = False
            record_event(session, previous, "replaced", f"The account now uses {valid.unicode}.")
        if domain is None:
            domain = Domain(
                name=valid.ascii,
                unicode_name=valid.unicode,
                registrable=valid.registrable,
                account_id=account.id,
                dns_state=DnsState.PENDING,
                cert_state=CertState.NONE,
                problems=[],
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            session.add(domain)
            session.flush()
        domain.account_id = account.id
        domain.wanted = True
        domain.next_attempt_at = now
        domain.attempts = 0
        account.tracking_domain_id = domain.id
        record_event(
            session, domain, "saved", f"{valid.unicode} was saved as link tracking domain."
        )
        return domain


def get_domain(session: Session, name: str, policy: NamePolicy | None = None) -> Domain:
    ascii_name = _lookup_name(name, policy)
    domain = session.scalar(select(Domain).where(Domain.name == ascii_name))
    if domain is None:
        raise NotFound(f"no domain {name!r}")
    return domain


def _lookup_name(name: str, policy: NamePolicy | None) -> str:
    # Look names up in their normalized form, but a name that no longer validates (say, a
    # policy change) must still be found, so fall back to simple folding.
    try:
        return validate(name, policy or NamePolicy(allow_test_domains=True)).ascii
    except Exception:
        return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class DomainStatus:
    """One view of a domain for the API, the account page and the CLI."""

    domain: str
    unicode_name: str
    account: str | None
    dns_state: str
    cert_state: str
    problems: list[dict[str, str]]
    issuer: str | None
    not_before: datetime | None
    not_after: datetime | None
    next_attempt_at: datetime | None
    failure_class: str | None
    wanted: bool

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "domain": self.domain,
            "unicode_name": self.unicode_name,
            "account": self.account,
            "dns_state": self.dns_state,
            "cert_state": self.cert_state,
            "problems": self.problems,
            "issuer": self.issuer,
            "not_before": iso(self.not_before),
            "not_after": iso(self.not_after),
            "next_attempt_at": iso(self.next_attempt_at),
            "failure_class": self.failure_class,
            "wanted": self.wanted,
        }


def status_of(session: Session, domain: Domain) -> DomainStatus:
    cert: Certificate | None = (
        session.get(Certificate, domain.current_certificate_id)
        if domain.current_certificate_id
        else None
    )
    account = session.get(Account, domain.account_id) if domain.account_id else None
    return DomainStatus(
        domain=domain.name,
        unicode_name=domain.unicode_name,
        account=account.name if account else None,
        dns_state=domain.dns_state,
        cert_state=domain.cert_state,
        problems=list(domain.problems or []),
        issuer=cert.issuer if cert else None,
        not_before=cert.not_before if cert else None,
        not_after=cert.not_after if cert else None,
        next_attempt_at=domain.next_attempt_at,
        failure_class=domain.failure_class,
        wanted=domain.wanted,
    )


def domain_status(store: Store, name: str) -> DomainStatus:
    with store.session() as session:
        return status_of(session, get_domain(session, name))


def list_domains(store: Store) -> list[DomainStatus]:
    with store.session() as session:
        domains = session.scalars(select(Domain).order_by(Domain.name)).all()
        return [status_of(session, d) for d in domains]


def domain_events(store: Store, name: str, limit: int = 100) -> list[dict[str, Any]]:
    with store.session() as session:
        domain = get_domain(session, name)
        rows = session.scalars(
            select(Event).where(Event.domain_id == domain.id).order_by(Event.id.desc()).limit(limit)
        ).all()
        return [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "dns_state": e.dns_state,
                "cert_state": e.cert_state,
                "message": e.message,
                "detail": e.detail,
            }
            for e in reversed(rows)
        ]
