"""How a run's orders were paced, judged against a CA's token bucket.

Pebble 2.4 enforces no rate limits, so "the CA never answered rateLimited" is checked by
replaying the moments orders reached it through the bucket the CA would keep: a burst of
`burst` tokens, one back every `refill` seconds, full at the first order. An order that finds
less than one token would have been refused by a CA counting that way.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# Log timestamps have millisecond resolution and orders leave a few milliseconds after their
# token was taken: a shortfall smaller than this is measurement, not a refusal.
TOLERANCE = 0.05


@dataclass(frozen=True)
class Pace:
    orders: int
    span: float  # seconds from the first order to the last
    peak: dict[int, int]  # window in seconds -> most orders in any such window
    lowest_balance: float  # the fewest tokens the CA's bucket held just before an order
    refusals: int  # orders that would have found the bucket empty


def measure(times: Sequence[datetime], burst: int, refill: float, windows: Sequence[int]) -> Pace:
    seconds = sorted((t - times[0]).total_seconds() for t in times) if times else []
    peak = {w: _busiest(seconds, w) for w in windows}
    balance, last, lowest, refusals = float(burst), 0.0, float(burst), 0
    for moment in seconds:
        balance = min(float(burst), balance + (moment - last) / refill)
        last = moment
        lowest = min(lowest, balance)
        if balance < 1 - TOLERANCE:
            refusals += 1  # the CA refuses and counts nothing
            continue
        balance -= 1
    span = seconds[-1] - seconds[0] if seconds else 0.0
    return Pace(len(seconds), span, peak, lowest, refusals)


def _busiest(seconds: Sequence[float], window: int) -> int:
    """Most orders in any window of `window` seconds starting at an order."""
    best = 0
    for i, start in enumerate(seconds):
        best = max(best, bisect_left(seconds, start + window) - i)
    return best


def allowed(burst: int, refill: float, window: int) -> int:
    """The most orders a bucket lets through in `window` seconds, starting full."""
    return burst + int(window / refill)
