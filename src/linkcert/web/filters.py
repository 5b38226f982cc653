"""The console's views of the fleet: failing, expiring, moved and pending domains, and search.

Each filter is a question the deliverability team asks, answered in SQL so that it works on a
fleet of any size; only "expiring" is refined in Python, because how close to expiry is too
close depends on each certificate's own lifetime. A page is read in name order from the last
name of the one before, through the state indexes (the expiring filter from its own two small
sets); the counts beside the filters come from a summary read at most once a minute
(CountsSummary), or, with a search, stop at SEARCH_COUNT_CAP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from linkcert.domains import DomainStatus, status_of
from linkcert.states import CertState, DnsState, FailureClass
from linkcert.store import Account, Certificate, Domain, Store, utcnow

log = logging.getLogger("linkcert.web")

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
    """Part of the name (either form) or of the owning account's name. The accounts are
    matched on their own and joined by id, so the search reads each table once."""
    needle = query.strip().lower()
    accounts = select(Account.id).where(func.lower(Account.name).contains(needle, autoescape=True))
    return or_(
        Domain.name.contains(needle, autoescape=True),
        func.lower(Domain.unicode_name).contains(needle, autoescape=True),
        Domain.account_id.in_(accounts),
    )


def _base(which: DomainFilter, search: str, now: datetime) -> Select[Domain]:
    query = select(Domain).outerjoin(Certificate, Certificate.id == Domain.current_certificate_id)
    condition = _condition(which, now)
    if condition is not None:
        query = query.where(condition)
    if search.strip():
        query = query.where(_search(search))
    return query


def _expiring_names(
    session: Session, search: str, now: datetime, after: str, limit: int
) -> list[str]:
    """The first `limit` names after `after` that the "expiring" filter may hold (a superset,
    refined by is_expiring()), from two small sets: domains already in an expiring or expired
    state (index on cert_state), and current certificates ending within the longest margin
    (index on not_after). Neither walks the fleet."""
    wanted = Domain.wanted.is_(True)
    by_state = (
        select(Domain.name)
        .where(wanted, Domain.cert_state.in_((CertState.EXPIRING, CertState.EXPIRED)))
        .where(Domain.name > after)
    )
    by_date = (
        select(Domain.name)
        .join(Certificate, Certificate.id == Domain.current_certificate_id)
        .where(wanted, Certificate.not_after < now + EXPIRING_WITHIN, Domain.name > after)
    )
    if search.strip():
        by_state = by_state.outerjoin(Account, Account.id == Domain.account_id).where(
            _search(search)
        )
        by_date = by_date.outerjoin(Account, Account.id == Domain.account_id).where(_search(search))
    names: set[str] = set()
    for query in (by_state, by_date):
        names.update(session.scalars(query.order_by(Domain.name).limit(limit)))
    return sorted(names)[:limit]


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
    options = (selectinload(Domain.account), selectinload(Domain.current_certificate))
    rows: list[ConsoleRow] = []
    with store.session() as session:
        if which is DomainFilter.EXPIRING:
            names = _expiring_names(session, search, now, after, limit + 1)
            query = select(Domain).where(Domain.name.in_(names[:limit])).order_by(Domain.name)
            domains = list(session.scalars(query.options(*options)).all())
            more = len(names) > limit
        else:
            query = (
                _base(which, search, now)
                .where(Domain.name > after)
                .order_by(Domain.name)
                .limit(limit + 1)
                .options(*options)
            )
            domains = list(session.scalars(query).all())
            more = len(domains) > limit
            domains = domains[:limit]
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
    last = domains[-1].name if more and domains else None
    return rows, last


# Counts with a search stop here: the console shows "1000+" rather than counting further.
SEARCH_COUNT_CAP = 1000
# How old the counts without a search may get before a page load has them read again (in the
# background: the page shows the counts it has).
COUNTS_REFRESH_SECONDS = 60.0


def _matches(which: DomainFilter, wanted: bool, dns: str, cert: str, failure: str | None) -> bool:
    """Whether a domain in these states is in the filter: _condition(), for one group of the
    summary (EXPIRING, which needs dates, is counted apart)."""
    match which:
        case DomainFilter.ALL:
            return True
        case DomainFilter.FAILING:
            return wanted and (
                dns in FAILING_DNS
                or cert in FAILING_CERT
                or (failure in FAILING_ISSUANCE and cert != CertState.WAITING_FOR_CA)
            )
        case DomainFilter.MOVED:
            return wanted and dns == DnsState.MOVED
        case DomainFilter.PENDING:
            return (
                wanted
                and cert in NO_CERT_YET
                and dns in (DnsState.PENDING, DnsState.OK)
                and (
                    failure is None
                    or failure not in FAILING_ISSUANCE
                    or cert == CertState.WAITING_FOR_CA
                )
            )
        case DomainFilter.EXPIRING:
            return False


def _expiring_count(session: Session, search: str, now: datetime, cap: int | None) -> int:
    """How many domains the "expiring" filter holds, from its two small sets."""
    wanted = Domain.wanted.is_(True)
    query = select(
        Domain.id, Domain.cert_state, Certificate.not_before, Certificate.not_after
    ).outerjoin(Certificate, Certificate.id == Domain.current_certificate_id)
    if search.strip():
        query = query.where(_search(search))
    by_state = query.where(wanted, Domain.cert_state.in_((CertState.EXPIRING, CertState.EXPIRED)))
    by_date = query.where(wanted, Certificate.not_after < now + EXPIRING_WITHIN)
    if cap is not None:
        by_state, by_date = by_state.limit(cap + 1), by_date.limit(cap + 1)
    seen: set[int] = set()
    for query_part in (by_state, by_date):
        for domain_id, state, start, end in session.execute(query_part):
            if state in (CertState.EXPIRING, CertState.EXPIRED) or is_expiring(start, end, now):
                seen.add(domain_id)
    return len(seen) if cap is None else min(len(seen), cap + 1)


def read_counts(store: Store, now: datetime) -> dict[DomainFilter, int]:
    """How many domains each filter holds: one grouped query over the states (no row per
    domain comes back) and the expiring count from its small sets."""
    counts = dict.fromkeys(DomainFilter, 0)
    with store.session() as session:
        groups = session.execute(
            select(
                Domain.wanted,
                Domain.dns_state,
                Domain.cert_state,
                Domain.failure_class,
                func.count(),
            ).group_by(Domain.wanted, Domain.dns_state, Domain.cert_state, Domain.failure_class)
        ).all()
        for wanted, dns, cert, failure, count in groups:
            for which in DomainFilter:
                if _matches(which, bool(wanted), dns, cert, failure):
                    counts[which] += int(count)
        counts[DomainFilter.EXPIRING] = _expiring_count(session, "", now, None)
    return counts


class CountsSummary:
    """The filters' counts without a search, read at most once per `refresh_seconds`: the
    first page load reads them; later ones show what is in memory and, when it is stale, have
    it read again in the background. A console page load never counts the fleet itself."""

    def __init__(
        self,
        store: Store,
        refresh_seconds: float = COUNTS_REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[DomainFilter, int]] | None = None
        self._refreshing: threading.Thread | None = None

    def _refresh(self) -> None:
        try:
            counts = read_counts(self.store, utcnow())
        except Exception:
            log.exception("counting the console's filters failed")
            counts = None
        with self._lock:
            if counts is not None:
                self._cached = (self.monotonic(), counts)
            self._refreshing = None

    def counts(self) -> dict[DomainFilter, int]:
        with self._lock:
            cached = self._cached
            if cached is not None:
                if self.monotonic() - cached[0] >= self.refresh_seconds and not self._refreshing:
                    self._refreshing = threading.Thread(
                        target=self._refresh, name="linkcert-console-counts", daemon=True
                    )
                    self._refreshing.start()
                return dict(cached[1])
            counts = read_counts(self.store, utcnow())
            self._cached = (self.monotonic(), counts)
            return dict(counts)

    def wait_for_refresh(self, timeout: float | None = None) -> None:
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout)


def count_by_filter(store: Store, search: str, now: datetime) -> dict[DomainFilter, int]:
    """How many domains each filter holds with the search applied, each count stopping past
    SEARCH_COUNT_CAP (the console shows "1000+"); without a search, exact (read_counts)."""
    if not search.strip():
        return read_counts(store, now)
    counts: dict[DomainFilter, int] = {}
    with store.session() as session:
        for which in DomainFilter:
            if which is DomainFilter.EXPIRING:
                counts[which] = _expiring_count(session, search, now, SEARCH_COUNT_CAP)
                continue
            capped = (
                _base(which, search, now)
                .with_only_columns(Domain.id)
                .order_by(None)
                .limit(SEARCH_COUNT_CAP + 1)
                .subquery()
            )
            total = session.scalar(select(func.count()).select_from(capped))
            counts[which] = int(total or 0)
    return counts
