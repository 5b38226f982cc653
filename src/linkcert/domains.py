"""Accounts and their link tracking domains: what the API, the page and the CLI change.

Saving a domain only writes a row due now and an event; the worker does the rest. Nothing
here waits on DNS or the CA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from linkcert.names import DomainName, NamePolicy, lookup_form, validate
from linkcert.ownership import PROOF_OPERATOR, ClaimPolicy
from linkcert.states import FailureClass

# The status and its errors live in linkcert.status (pure, shared with the lean read path);
# they are imported from here as before.
from linkcert.status import CA_CHOICE as CA_CHOICE
from linkcert.status import DomainStatus as DomainStatus
from linkcert.status import NotFound as NotFound
from linkcert.status import claim_status, event_json, owner_status
from linkcert.store import Account, Certificate, Domain, DomainClaim, Event, Order, Store, utcnow
from linkcert.store.signals import CERTIFICATES, WORK, announce
from linkcert.text import check_clean


class Conflict(Exception):
    """The change would clash with another account's data."""


class NoTrackingDomain(NotFound):
    """The account exists but has no link tracking domain (any more)."""


class TooManyClaims(Exception):
    """The account already has as many unproven claims as it may hold."""


class NotProven(Exception):
    """The name is not (or no longer) proven to be the account's: no links on it."""


class TooEarly(Exception):
    """Retrying now would go against what the CA asked for; `not_before` says when it may."""

    def __init__(self, message: str, not_before: datetime) -> None:
        super().__init__(message)
        self.not_before = not_before


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
    name = check_clean(name.strip(), "account name")
    if not name or len(name) > 200:
        raise ValueError("an account name takes 1 to 200 characters")
    for email in emails:
        check_clean(email, "email address")
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
    store: Store,
    account_ref: str | int,
    name: str,
    policy: NamePolicy,
    claims: ClaimPolicy | None = None,
) -> Domain:
    """Make `name` the account's link tracking domain and queue it for the worker at once.

    Unless the account already owns it, this is a claim: the name becomes the account's once
    DNS names the account (see ownership.py). The previous domain, if the account owned it,
    stops being renewed but keeps serving the links of emails already sent for as long as its
    certificate and DNS allow.
    """
    valid = validate(name, policy)
    with store.session() as session:
        account = find_account(session, account_ref)
        previous = account.tracking_domain
        domain = claim_domain(session, valid, account.id, claims=claims)
        if previous is not None and previous.id != domain.id and previous.account_id == account.id:
            previous.wanted = False
            record_event(session, previous, "replaced", f"The account now uses {valid.unicode}.")
        account.tracking_domain_id = domain.id
        if domain.account_id == account.id:
            message = f"{valid.unicode} was saved as link tracking domain."
        else:
            message = (
                f"{valid.unicode} was saved as link tracking domain of account {account.name!r}; "
                "it becomes the account's once DNS names the account."
            )
        record_event(session, domain, "saved", message, account=account.name)
        return domain


def claim_domain(
    session: Session,
    valid: DomainName,
    account_id: int,
    kind: str = "customer",
    *,
    claims: ClaimPolicy | None = None,
    operator_approved: bool = False,
) -> Domain:
    """The row for `valid` (made if new), with the account's claim on it; workers are told.

    The account's own name is simply wanted again. Any other name gets (or renews) a claim,
    which DNS must prove; several accounts may claim one name. `operator_approved` (a brand
    domain an operator approved) makes the account the owner at once, unless another account
    already owns the name (Conflict). Raises TooManyClaims past `claims.max_open`.
    """
    now = utcnow()
    domain = session.scalar(select(Domain).where(Domain.name == valid.ascii))
    if domain is None:
        domain = Domain(name=valid.ascii, unicode_name=valid.unicode, registrable=valid.registrable)
        session.add(domain)
        session.flush()
    if domain.deleted_at is not None and not domain.delete_requested:
        domain.deleted_at = None  # saving a deleted name starts its life anew
    if operator_approved:
        if domain.account_id not in (None, account_id):
            raise Conflict(f"{valid.unicode} is already in use by another account")
        if domain.account_id is None:
            domain.link_epoch += 1
        domain.account_id = account_id
        domain.proof = PROOF_OPERATOR
    if domain.account_id == account_id:
        domain.kind = kind
        domain.wanted = True
        domain.attempts = 0
        domain.next_attempt_at = now
    else:
        _add_claim(session, domain, account_id, claims or ClaimPolicy(), now)
        if domain.account_id is None:
            domain.kind = kind
            domain.wanted = True
            domain.attempts = 0
            domain.next_attempt_at = now
        elif domain.failure_class in (None, FailureClass.DNS_NOT_READY, FailureClass.CAA_FORBIDS):
            # Check the claim soon, without cutting short a wait the CA asked the owner for.
            domain.next_attempt_at = min(domain.next_attempt_at or now, now)
    session.flush()
    announce(session, WORK, str(domain.id))
    return domain


def _add_claim(
    session: Session, domain: Domain, account_id: int, policy: ClaimPolicy, now: datetime
) -> None:
    claim = session.scalar(
        select(DomainClaim).where(
            DomainClaim.domain_id == domain.id, DomainClaim.account_id == account_id
        )
    )
    if claim is None or claim.expires_at <= now:
        held = session.scalar(
            select(func.count(DomainClaim.id)).where(
                DomainClaim.account_id == account_id,
                DomainClaim.expires_at > now,
                DomainClaim.domain_id != domain.id,
            )
        )
        if (held or 0) >= policy.max_open:
            raise TooManyClaims(
                f"the account already has {held} domains waiting for DNS to prove them "
                f"(at most {policy.max_open}): prove one with its DNS records, or wait until "
                "the unproven ones expire"
            )
    if claim is None:
        claim = DomainClaim(domain_id=domain.id, account_id=account_id, problems=[])
        session.add(claim)
    claim.state = "pending"
    claim.problems = []
    claim.created_at = claim.created_at if claim.expires_at and claim.expires_at > now else now
    claim.expires_at = now + policy.lifetime


def get_domain(session: Session, name: str, policy: NamePolicy | None = None) -> Domain:
    ascii_name = lookup_form(name, policy)
    domain = session.scalar(select(Domain).where(Domain.name == ascii_name))
    if domain is None:
        raise NotFound(f"no domain {name!r}")
    return domain


def status_of(session: Session, domain: Domain, viewer: int | None = None) -> DomainStatus:
    """The domain's status; with `viewer` (an account id), as that account may see it: an
    account that only claims the name sees its claim, not the owner's certificate."""
    if viewer is not None and domain.account_id != viewer:
        return _claim_status(session, domain, viewer)
    cert: Certificate | None = (
        session.get(Certificate, domain.current_certificate_id)
        if domain.current_certificate_id
        else None
    )
    account = session.get(Account, domain.account_id) if domain.account_id else None
    order = session.get(Order, cert.order_id) if cert is not None and cert.order_id else None
    return owner_status(domain, account, cert, order.info if order is not None else None)


def _claim_status(session: Session, domain: Domain, account_id: int) -> DomainStatus:
    claim = session.scalar(
        select(DomainClaim).where(
            DomainClaim.domain_id == domain.id, DomainClaim.account_id == account_id
        )
    )
    return claim_status(domain, session.get(Account, account_id), claim, utcnow())


def domain_status(store: Store, name: str) -> DomainStatus:
    with store.session() as session:
        return status_of(session, get_domain(session, name))


def list_domains(store: Store) -> list[DomainStatus]:
    """Every domain, in name order (small installations and tests; lists page with
    find_domains)."""
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
            event_json(e.at, e.kind, e.dns_state, e.cert_state, e.message, e.detail)
            for e in reversed(rows)
        ]


@dataclass(frozen=True)
class AccountSummary:
    """One view of an account for the API and the CLI."""

    id: int
    name: str
    contact_emails: list[str]
    tracking_domain: str | None
    created_at: datetime
    upstreams: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "contact_emails": self.contact_emails,
            "tracking_domain": self.tracking_domain,
            "created_at": self.created_at.isoformat(),
            "upstreams": self.upstreams,
        }


def summary_of(account: Account) -> AccountSummary:
    domain = account.tracking_domain
    return AccountSummary(
        id=account.id,
        name=account.name,
        contact_emails=list(account.contact_emails or []),
        tracking_domain=domain.name if domain else None,
        created_at=account.created_at,
        upstreams=list(account.upstreams) if account.upstreams else None,
    )


def account_dcv_secret(store: Store, account_ref: str | int) -> str | None:
    """The secret the account's `_acme-challenge` delegation labels are made with."""
    with store.session() as session:
        return find_account(session, account_ref).dcv_secret


def account_label(store: Store, account_ref: str | int) -> str:
    """The account's DNS label, which its own CNAME target and TXT record are made of."""
    with store.session() as session:
        return find_account(session, account_ref).dns_label


MAX_ACCOUNT_UPSTREAMS = 16


def set_account_upstreams(
    store: Store, account_ref: str | int, upstreams: Sequence[str] | None
) -> AccountSummary:
    """Give an account its own origins for proxy mode (None or empty: the edge's global
    `edge_upstreams` again). Raises ValueError naming a bad origin, NotFound."""
    from linkcert.origins import parse_origin

    cleaned: list[str] | None = None
    if upstreams:
        if len(upstreams) > MAX_ACCOUNT_UPSTREAMS:
            raise ValueError(f"at most {MAX_ACCOUNT_UPSTREAMS} origins per account")
        cleaned = []
        for item in upstreams:
            label = parse_origin(item).label
            if label not in cleaned:
                cleaned.append(label)
    with store.session() as session:
        account = find_account(session, account_ref)
        account.upstreams = cleaned
        session.flush()
        return summary_of(account)


def account_upstreams_of_domain(store: Store, name: str) -> list[str] | None:
    """The origins a domain's requests go to when its account has its own (else None)."""
    with store.session() as session:
        upstreams = session.scalar(
            select(Account.upstreams)
            .join(Domain, Domain.account_id == Account.id)
            .where(Domain.name == name)
        )
    return list(upstreams) if upstreams else None


def account_summary(store: Store, account_ref: str | int) -> AccountSummary:
    with store.session() as session:
        return summary_of(find_account(session, account_ref))


def list_accounts(store: Store, *, after_id: int = 0, limit: int = 100) -> list[AccountSummary]:
    """Accounts in id order, `limit` at a time, starting after the id `after_id`."""
    with store.session() as session:
        accounts = session.scalars(
            select(Account)
            .where(Account.id > after_id)
            .order_by(Account.id)
            .limit(limit)
            .options(selectinload(Account.tracking_domain))
        ).all()
        return [summary_of(a) for a in accounts]


@dataclass(frozen=True)
class DomainQuery:
    """Which domains a list holds: every filter is optional, all given ones apply.

    `owner` limits the list to one account's domains (the account that DNS proved owns them).
    `prefix` is a prefix of the ASCII (A-label) name.
    """

    dns_state: str | None = None
    cert_state: str | None = None
    failure_class: str | None = None
    owner: int | None = None
    prefix: str = ""

    @classmethod
    def of(
        cls,
        dns_state: StrEnum | None = None,
        cert_state: StrEnum | None = None,
        failure_class: StrEnum | None = None,
        owner: int | None = None,
        prefix: str = "",
    ) -> DomainQuery:
        """The query for filters as a front end took them: states as enums, the prefix as
        typed (surrounding spaces and case do not matter)."""
        return cls(
            dns_state=dns_state.value if dns_state else None,
            cert_state=cert_state.value if cert_state else None,
            failure_class=failure_class.value if failure_class else None,
            owner=owner,
            prefix=prefix.strip().lower(),
        )

    def key(self) -> dict[str, object]:
        """The filters, for the digest that binds a page cursor to its query."""
        return {
            "dns_state": self.dns_state,
            "cert_state": self.cert_state,
            "failure_class": self.failure_class,
            "owner": self.owner,
            "prefix": self.prefix,
        }


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string starting with `prefix` (None: no bound)."""
    while prefix and prefix[-1] == "\U0010ffff":
        prefix = prefix[:-1]
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def find_domains(
    store: Store,
    *,
    dns_state: str | None = None,
    cert_state: str | None = None,
    after: str = "",
    limit: int = 100,
    query: DomainQuery | None = None,
) -> list[DomainStatus]:
    """Domains in name order, optionally filtered (`query`, or the two states), after `after`.

    Each filter has an index that goes on by name (migration 0017), so a page is a range scan
    of one index from `after`, however many domains there are; no count is taken.
    """
    wanted = query or DomainQuery(dns_state=dns_state, cert_state=cert_state)
    # Loading accounts and certificates up front lets status_of() find them without a query
    # per domain.
    select_domains = (
        select(Domain)
        .where(Domain.name > after)
        .order_by(Domain.name)
        .limit(limit)
        .options(selectinload(Domain.account), selectinload(Domain.current_certificate))
    )
    if wanted.dns_state is not None:
        select_domains = select_domains.where(Domain.dns_state == wanted.dns_state)
    if wanted.cert_state is not None:
        select_domains = select_domains.where(Domain.cert_state == wanted.cert_state)
    if wanted.failure_class is not None:
        select_domains = select_domains.where(Domain.failure_class == wanted.failure_class)
    if wanted.owner is not None:
        select_domains = select_domains.where(Domain.account_id == wanted.owner)
    if wanted.prefix:
        # A range on the name (which the indexes can seek to) and LIKE to be exact whatever
        # the collation.
        select_domains = select_domains.where(
            Domain.name >= wanted.prefix, Domain.name.startswith(wanted.prefix, autoescape=True)
        )
        end = _prefix_end(wanted.prefix)
        if end is not None:
            select_domains = select_domains.where(Domain.name < end)
    with store.session() as session:
        domains = session.scalars(select_domains).all()
        # The orders that say which CA issued each certificate, in one query: status_of()
        # then finds them in the session.
        order_ids = {
            d.current_certificate.order_id
            for d in domains
            if d.current_certificate is not None and d.current_certificate.order_id is not None
        }
        if order_ids:
            session.scalars(select(Order).where(Order.id.in_(order_ids))).all()
        return [status_of(session, d) for d in domains]


def domain_status_for(store: Store, name: str, account_id: int | None) -> DomainStatus:
    """The status of `name` as the account `account_id` may see it (None: any domain).

    Another account's domain is reported exactly like a missing one, so that an account
    cannot learn which names other accounts use by asking.
    """
    with store.session() as session:
        try:
            domain = get_domain(session, name)
        except NotFound:
            domain = None
        hidden = account_id is not None and not _involves(session, domain, account_id)
        if domain is None or hidden:
            raise NotFound(f"no domain {name!r}")
        return status_of(session, domain, account_id)


def _involves(session: Session, domain: Domain | None, account_id: int) -> bool:
    """Whether the account owns the name, claims it, or has it as its tracking domain."""
    if domain is None or domain.account_id == account_id:
        return domain is not None
    account = session.get(Account, account_id)
    if account is not None and account.tracking_domain_id == domain.id:
        return True
    return (
        session.scalar(
            select(DomainClaim.id).where(
                DomainClaim.domain_id == domain.id, DomainClaim.account_id == account_id
            )
        )
        is not None
    )


def tracking_domain_of(session: Session, account_ref: str | int) -> Domain:
    """The account's link tracking domain, or NoTrackingDomain (NotFound for no account)."""
    account = find_account(session, account_ref)
    if account.tracking_domain is None:
        raise NoTrackingDomain(f"account {account.name!r} has no link tracking domain")
    return account.tracking_domain


def tracking_domain_status(store: Store, account_ref: str | int) -> DomainStatus:
    with store.session() as session:
        account = find_account(session, account_ref)
        return status_of(session, tracking_domain_of(session, account.id), account.id)


def save_tracking_domain(
    store: Store,
    account_ref: str | int,
    name: str,
    policy: NamePolicy,
    claims: ClaimPolicy | None = None,
) -> tuple[Domain, bool]:
    """set_tracking_domain() for callers that repeat themselves; also says whether it changed.

    Saving the domain the account already has changes nothing: a client that re-sends its
    settings every few minutes must not reset the worker's back-off each time.
    """
    valid = validate(name, policy)
    with store.session() as session:
        account = find_account(session, account_ref)
        current = account.tracking_domain
        if current is not None and current.name == valid.ascii:
            if current.account_id == account.id and current.wanted:
                return current, False
            claim = session.scalar(
                select(DomainClaim).where(
                    DomainClaim.domain_id == current.id,
                    DomainClaim.account_id == account.id,
                    DomainClaim.expires_at > utcnow(),
                )
            )
            if claim is not None:
                return current, False  # the claim stands; DNS decides
    return set_tracking_domain(store, account_ref, name, policy, claims), True


def remove_tracking_domain(store: Store, account_ref: str | int) -> DomainStatus:
    """Detach the account's link tracking domain.

    The domain is no longer renewed, but it is not revoked or forgotten: its certificate keeps
    serving the links of emails already sent until it expires, and it stays the account's, so
    that no other account can take the name over while those links are out there.
    """
    with store.session() as session:
        account = find_account(session, account_ref)
        domain = tracking_domain_of(session, account.id)
        account.tracking_domain_id = None
        if domain.account_id != account.id:
            # Only a claim: withdraw it; the name was never the account's.
            session.execute(
                delete(DomainClaim).where(
                    DomainClaim.domain_id == domain.id, DomainClaim.account_id == account.id
                )
            )
            record_event(
                session, domain, "claim_withdrawn", f"Account {account.name!r} withdrew its claim."
            )
            session.flush()
            return _claim_status(session, domain, account.id)
        domain.wanted = False
        record_event(
            session,
            domain,
            "detached",
            f"{domain.unicode_name} is no longer the account's link tracking domain and will "
            "not be renewed; its current certificate serves until it expires.",
        )
        session.flush()
        return status_of(session, domain)


def delete_domain(store: Store, name: str) -> DomainStatus:
    """Queue the domain for deletion: the worker revokes its certificates and erases its keys.

    Every delete does so for what exists at that time, whatever happened before (a name saved
    again after an earlier delete has new certificates). Links on the domain stop at once, for
    good: its link epoch goes up. Claims on it are dropped; saving it again is a new claim.
    This is for domains whose owner is gone, not for a change of tracking domain (see
    remove_tracking_domain).
    """
    with store.session() as session:
        domain = get_domain(session, name)
        domain.delete_requested = True
        domain.wanted = False
        domain.account_id = None
        domain.proof = None
        domain.link_epoch += 1
        domain.next_attempt_at = utcnow()
        session.execute(delete(DomainClaim).where(DomainClaim.domain_id == domain.id))
        announce(session, WORK, str(domain.id))
        announce(session, CERTIFICATES, domain.name)
        for account in session.scalars(
            select(Account).where(Account.tracking_domain_id == domain.id)
        ):
            account.tracking_domain_id = None
        record_event(
            session,
            domain,
            "delete_requested",
            "Deletion requested: the certificate will be revoked and its key erased.",
        )
        session.flush()
        return status_of(session, domain)


def retry_now(store: Store, name: str, account_id: int | None = None) -> DomainStatus:
    """Make the domain due now, so the worker checks DNS and retries issuance at once.

    A CA that rate-limited us is obeyed: until the time it gave, this raises TooEarly. For an
    account that only claims the name (`account_id` not the owner), this is a DNS check of its
    claim: it never cuts short a wait the CA asked of the owner's certificate.
    """
    now = utcnow()
    with store.session() as session:
        domain = get_domain(session, name)
        if account_id is not None and domain.account_id != account_id:
            waiting = domain.failure_class not in (
                None,
                FailureClass.DNS_NOT_READY,
                FailureClass.CAA_FORBIDS,
            )
            if domain.account_id is None or not waiting:
                domain.next_attempt_at = now
                announce(session, WORK, str(domain.id))
            return status_of(session, domain, account_id)
        if not domain.wanted:
            raise Conflict(
                f"{domain.unicode_name} is not being secured any more; save it as the link "
                "tracking domain again to resume."
            )
        due = domain.next_attempt_at
        if domain.failure_class == FailureClass.RATE_LIMITED and due is not None and due > now:
            raise TooEarly(
                "The certificate authority's request limits (or linkcert's own budget for them) "
                f"call for a wait before trying {domain.unicode_name} "
                f"again; the next attempt is at {due:%Y-%m-%d %H:%M:%S} UTC.",
                due,
            )
        domain.next_attempt_at = now
        announce(session, WORK, str(domain.id))
        record_event(session, domain, "retry_requested", "A retry was requested; trying now.")
        return status_of(session, domain)
