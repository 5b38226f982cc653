"""When to look at a domain again: re-check delays and retry back-off.

When to renew is `linkcert.renewal`, which the status shown to people also reads.

Pure functions of the attempt count and the certificate's own dates, so that the schedule can
be tested without waiting and never assumes a 90-day lifetime.
"""

from __future__ import annotations

import random
from datetime import timedelta

from linkcert.states import FailureClass

# DNS problems are cheap to re-check and the customer may be fixing them right now: look again
# soon at first, then less often, never rarer than hourly.
DNS_RECHECK = (5, 15, 30, 60, 120, 300, 600, 1800, 3600)
# CA-side failures follow the CA's guidance: about 1 min, 10 min, 100 min, then daily.
CA_BACKOFF = (60, 600, 6000, 86400)


def dns_recheck_delay(attempts: int) -> timedelta:
    """Delay before re-checking DNS after `attempts` failed checks in a row (1-based)."""
    index = min(max(attempts, 1), len(DNS_RECHECK)) - 1
    return timedelta(seconds=DNS_RECHECK[index])


def retry_delay(
    failure: FailureClass,
    attempts: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """Delay before the next attempt after a failure of class `failure`.

    A CA's Retry-After is always honoured (it is a floor); jitter of up to 10% keeps a batch of
    domains that failed together from retrying together.
    """
    rand = rng or random
    if failure == FailureClass.RATE_LIMITED and retry_after is not None:
        # Waiting for a budget is not a failure to back off from: go when it frees up. The
        # rate limiter already gives each held-back domain a turn of its own; jitter of a tenth
        # of the wait (90 s of a 15-minute wait) would shuffle those turns and leave tokens
        # unused, so it is at most a second.
        return timedelta(seconds=retry_after + rand.uniform(0, min(1.0, 0.1 * retry_after)))
    if failure in (FailureClass.DNS_NOT_READY, FailureClass.CAA_FORBIDS):
        base = dns_recheck_delay(attempts).total_seconds()
    else:
        index = min(max(attempts, 1), len(CA_BACKOFF)) - 1
        base = float(CA_BACKOFF[index])
    delay = base * (1 + rand.uniform(0, 0.1))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)
