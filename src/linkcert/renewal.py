"""When to renew a certificate: by the CA's renewal information (ARI), else by its lifetime.

Pure functions of the certificate's own dates, so they can be tested without waiting and never
assume a 90-day lifetime. The worker stores the plan it picks on the certificate (`renew_at`,
and with ARI when to ask the CA again); a domain's status shows that stored plan.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def renewal_window(not_before: datetime, not_after: datetime) -> tuple[datetime, datetime]:
    """Without ARI: renew when a third of the lifetime remains (half under 10 days).

    The window opens a twentieth of the lifetime before that point so that certificates
    issued together do not all renew at the same moment.
    """
    lifetime = not_after - not_before
    remaining_fraction = 0.5 if lifetime < timedelta(days=10) else 1 / 3
    latest = not_after - lifetime * remaining_fraction
    return latest - lifetime * 0.05, latest


def renewal_time(
    not_before: datetime, not_after: datetime, rng: random.Random | None = None
) -> datetime:
    """A random time inside the renewal window."""
    rand = rng or random
    earliest, latest = renewal_window(not_before, not_after)
    return earliest + (latest - earliest) * rand.uniform(0, 1)


def renewal_due(not_before: datetime, not_after: datetime, now: datetime) -> bool:
    return now >= renewal_window(not_before, not_after)[0]


def plan_renewal(
    not_before: datetime,
    not_after: datetime,
    ari_window: tuple[datetime, datetime] | None,
    min_margin: timedelta,
    rng: random.Random | None = None,
) -> datetime:
    """When to renew: a random time in the CA's ARI window, else by the lifetime rule.

    Whatever the source, renewal happens at least `min_margin` before expiry (at most half
    the lifetime, so a short-lived certificate still gets its first half of service).
    """
    if ari_window is not None:
        start, end = ari_window
        when = start + (end - start) * (rng or random).uniform(0, 1)
    else:
        when = renewal_time(not_before, not_after, rng)
    latest = not_after - min(min_margin, (not_after - not_before) / 2)
    return min(when, latest)


def ari_recheck_delay(retry_after: float | None) -> timedelta:
    """When to ask for renewal information again: the CA's Retry-After, but at least twice
    a day and not more often than hourly."""
    seconds = 6 * 3600.0 if retry_after is None else retry_after
    return timedelta(seconds=min(max(seconds, 3600.0), 12 * 3600.0))
