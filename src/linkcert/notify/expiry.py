"""Expiry warnings: certificates close to their end that no renewal has replaced yet.

A renewed domain points at its new certificate, so "the current certificate expires within
the warning period" is exactly "expiring without a successful renewal". The warning period is
`expiry_warning_days`, but never more than a quarter of the certificate's own lifetime: a
6-day certificate renews with 3 days left, and warning at 7 days would cry wolf at issuance.
Each certificate is warned about once per threshold (by default 7, 3 and 1 days before its
end), and once more when it has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from linkcert.config import Settings
from linkcert.notify.kinds import NotificationKind
from linkcert.notify.outbox import Notifier
from linkcert.store import Store
from linkcert.store.models import Certificate, Domain, utcnow

log = logging.getLogger("linkcert.notify")

# Thresholds as fractions of the warning period: 7, 3 and 1 days for the default 7.
THRESHOLD_FRACTIONS = (1.0, 3 / 7, 1 / 7)
# An expired certificate is reported if the scan sees it within this long of its end; older
# ones were reported then (or predate linkcert watching), and are not re-read every scan.
EXPIRED_LOOKBACK = timedelta(days=2)
SCAN_INTERVAL = 600.0
PAGE = 500


def warning_period(not_before: datetime, not_after: datetime, warning_days: float) -> timedelta:
    return min(timedelta(days=warning_days), (not_after - not_before) / 4)


def thresholds(not_before: datetime, not_after: datetime, warning_days: float) -> list[timedelta]:
    period = warning_period(not_before, not_after, warning_days)
    return [period * fraction for fraction in THRESHOLD_FRACTIONS]


def crossed_threshold(
    not_before: datetime, not_after: datetime, now: datetime, warning_days: float
) -> int | None:
    """The index of the most urgent threshold `now` has passed, or None (not yet, or expired)."""
    remaining = not_after - now
    if remaining <= timedelta(0):
        return None
    crossed = [
        index
        for index, threshold in enumerate(thresholds(not_before, not_after, warning_days))
        if remaining <= threshold
    ]
    return crossed[-1] if crossed else None


def scan_expiring(store: Store, notifier: Notifier, warning_days: float) -> int:
    """Record the expiry warnings due now (by the notifier's clock); return how many are new."""
    now = notifier.clock()
    horizon = now + timedelta(days=warning_days)
    written = 0
    after: tuple[datetime, int] | None = None
    while True:
        with store.session() as session:
            query = (
                select(Domain, Certificate)
                .join(Certificate, Certificate.id == Domain.current_certificate_id)
                .where(
                    Domain.wanted.is_(True),
                    Certificate.revoked_at.is_(None),
                    Certificate.not_after <= horizon,
                    Certificate.not_after > now - EXPIRED_LOOKBACK,
                )
                .order_by(Certificate.not_after, Certificate.id)
                .limit(PAGE)
            )
            if after is not None:
                query = query.where(
                    or_(
                        Certificate.not_after > after[0],
                        and_(Certificate.not_after == after[0], Certificate.id > after[1]),
                    )
                )
            rows = session.execute(query).all()
            for domain, cert in rows:
                written += _warn(session, notifier, domain, cert, now, warning_days)
        if len(rows) < PAGE:
            return written
        after = (rows[-1][1].not_after, rows[-1][1].id)


def _warn(
    session: Session,
    notifier: Notifier,
    domain: Domain,
    cert: Certificate,
    now: datetime,
    warning_days: float,
) -> int:
    if cert.not_after <= now:
        notification = notifier.emit(
            session,
            NotificationKind.EXPIRED,
            domain,
            message=f"The certificate expired on {cert.not_after:%Y-%m-%d %H:%M} UTC.",
        )
        return 0 if notification is None else 1
    index = crossed_threshold(cert.not_before, cert.not_after, now, warning_days)
    if index is None:
        return 0
    left = cert.not_after - now
    notification = notifier.emit(
        session,
        NotificationKind.EXPIRING,
        domain,
        message=f"The certificate expires on {cert.not_after:%Y-%m-%d %H:%M} UTC.",
        details={"threshold": index, "seconds_left": int(left.total_seconds())},
    )
    return 0 if notification is None else 1


async def watch_expiry(
    store: Store,
    settings: Settings,
    stop: asyncio.Event,
    *,
    interval: float = SCAN_INTERVAL,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Scan for expiring certificates every `interval` seconds until `stop` is set."""
    notifier = Notifier.from_settings(settings, clock)
    while not stop.is_set():
        try:
            count = await asyncio.to_thread(
                scan_expiring, store, notifier, settings.expiry_warning_days
            )
            if count:
                log.info("%s certificate expiry warning(s) recorded", count)
        except Exception:
            log.exception("expiry scan failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
