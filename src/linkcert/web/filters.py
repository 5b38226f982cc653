"""The console's views of the fleet: failing, expiring, moved and pending domains, and search.

Each filter is a question the deliverability team asks, answered in SQL so that it works on a
fleet of any size; only "expiring" is refined in Python, because how close to expiry is too
close depends on each certificate's own lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import selectinload

from linkcert.domains import DomainStatus, status_of
from linkcert.states import CertState, DnsState, FailureClass
from linkcert.store import Account, Certificate, Domain, Store

PAGE_SIZE = 50

# A certificate is "expiring" when less than this is left, or less than a quarter of its
# lifetime for short-lived ones: by then its automatic renewal (due when a third or half of
# the lifetime remains) has been failing for a while, or an uploaded one is about to lapse.
EXPIRING_WITHIN = timedelta(days=14)

FAILING_DNS = (DnsState.POINTS_ELSEWHERE, DnsState.CAA_BLOCKED, DnsState.DNS_ERROR)
FAILING_CERT = (CertState.FAILED, CertState.EXPIRED, CertState.REVOKED)
# Failures of the CA side; DNS failure classes are covered by the DNS states above.
FAILING_ISSUANCE = (
    FailureClass.CHALLENGE_FAILED,
    FailureClass.CA_UNAVAILABLE,
    FailureClass.RATE_LIMITED,
    FailureClass.CA_REJECTED,
    FailureClass.INTERNAL,
)
NO_CERT_YET = (
    CertState.NONE,
    CertState.PENDING_VALIDATION,
    CertState.PENDING_ISSUANCE,
    CertState.WAITING_FOR_CA,
)


class DomainFilter(StrEnum):
    ALL = "all"
    FAILING = "failing"
    EXPIRING = "expiring"
    MOVED = "moved"
    PENDING = "pending"


FILTER_LABELS = {
    DomainFilter.ALL: "All",
    DomainFilter.FAILING: "Failing",
    DomainFilter.EXPIRING: "Expiring",
    DomainFilter.MOVED: "Moved",
    DomainFilter.PENDING: "Pending",
}

FILTER_HELP = {
    DomainFilter.ALL: "Every domain, including detached ones.",
    DomainFilter.FAILING: "DNS or certificate problems that stop a domain from being secured "
    "or renewed.",
    DomainFilter.EXPIRING: "Certificates with less than 14 days left (less than a quarter of "
    "their lifetime for short-lived ones), or already expired.",
    DomainFilter.MOVED: "Secured domains whose DNS no longer points to the platform.",
    DomainFilter.PENDING: "Domains waiting for their first certificate, with nothing wrong yet "
    "(or only waiting for the certificate authority).",
}


@dataclass(frozen=True)
class ConsoleRow:
    status: DomainStatus
    kind: str
    source: str | None
    expiring: bool


def is_expiring(not_before: datetime | None, not_after: datetime | None, now: datetime) -> bool:
    if not_before is None or not_after is None:
        return False
    margin = min(EXPIRING_WITHIN, (not_after - not_before) / 4)
    return not_after - now < margin


def _condition(which: DomainFilter, now: datetime) -> ColumnElement[bool] | None:
    wanted = Domain.wanted.is_(True)
    match which:
        case DomainFilter.ALL:
            return None
        case DomainFilter.FAILING:
            return and_(
                wanted,
                or_(
                    Domain.dns_state.in_(FAILING_DNS),
                    Domain.cert_state.in_(FAILING_CERT),
                    # Waiting for the CA is not failing: it passes by itself.
                    and_(
                        Domain.failure_class.in_(FAILING_ISSUANCE),
                        Domain.cert_state != CertState.WAITING_FOR_CA,
                    ),
                ),
            )
        case DomainFilter.MOVED:
            return and_(wanted, Domain.dns_state == DnsState.MOVED)
        case DomainFilter.PENDING:
            return and_(
                wanted,
                Domain.cert_state.in_(NO_CERT_YET),
                Domain.dns_state.in_((DnsState.PENDING, DnsState.OK)),
                or_(
                    Domain.failure_class.is_(None),
                    Domain.failure_class.not_in(FAILING_ISSUANCE),
                    Domain.cert_state == CertState.WAITING_FOR_CA,
                ),
            )
        case DomainFilter.EXPIRING:
            # A superset, refined by is_expiring(): every certificate within the longest margin.
            return and_(
                wanted,
                or_(
                    Domain.cert_state.in_((CertState.EXPIRING, CertState.EXPIRED)),
                    Certificate.not_after < now + EXPIRING_WITHIN,
                ),
            )


def _search(query: str) -> ColumnElement[bool]:
    needle = query.strip().lower()
    return or_(
        Domain.name.contains(needle, autoescape=True),
        func.lower(Domain.unicode_name).contains(needle, autoescape=True),
        func.lower(Account.name).contains(needle, autoescape=True),
    )


def _base(which: DomainFilter, search: str, now: datetime) -> Select[Domain]:
    query = (
        select(Domain)
        .outerjoin(Certificate, Certificate.id == Domain.current_certificate_id)
        .outerjoin(Account, Account.id == Domain.account_id)
    )
    condition = _condition(which, now)
    if condition is not None:
        query = query.where(condition)
    if search.strip():
        query = query.where(_search(search))
    return query


def find_console_rows(
    store: Store,
    which: DomainFilter,
    search: str,
    now: datetime,
    *,
    after: str = "",
    limit: int = PAGE_SIZE,
) -> tuple[list[ConsoleRow], str | None]:
    """One page of domains in name order, and the name to continue after (None: last page)."""
    query = (
        _base(which, search, now)
        .where(Domain.name > after)
        .order_by(Domain.name)
        .limit(limit)
        .options(selectinload(Domain.account), selectinload(Domain.current_certificate))
    )
    rows: list[ConsoleRow] = []
    with store.session() as session:
        domains = session.scalars(query).all()
        for domain in domains:
            cert = domain.current_certificate
            expiring = domain.cert_state in (CertState.EXPIRING, CertState.EXPIRED) or (
                cert is not None and is_expiring(cert.not_before, cert.not_after, now)
            )
            if which is DomainFilter.EXPIRING and not expiring:
                continue
            rows.append(
                ConsoleRow(
                    status_of(session, domain),
                    domain.kind,
                    cert.source if cert is not None else None,
                    expiring,
                )
            )
    last = domains[-1].name if len(domains) == limit else None
    return rows, last


def count_by_filter(store: Store, search: str, now: datetime) -> dict[DomainFilter, int]:
    """How many domains each filter holds (with the search applied)."""
    counts: dict[DomainFilter, int] = {}
    with store.session() as session:
        for which in DomainFilter:
            base = _base(which, search, now)
            if which is DomainFilter.EXPIRING:
                dates = session.execute(
                    base.with_only_columns(
                        Domain.cert_state, Certificate.not_before, Certificate.not_after
                    )
                ).all()
                counts[which] = sum(
                    1
                    for state, start, end in dates
                    if state in (CertState.EXPIRING, CertState.EXPIRED)
                    or is_expiring(start, end, now)
                )
            else:
                total = session.scalar(base.with_only_columns(func.count(Domain.id)).order_by(None))
                counts[which] = int(total or 0)
    return counts
