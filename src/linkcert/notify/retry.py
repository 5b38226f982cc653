"""When to try a failed delivery again, and when to give up.

A pure function of the attempt count and the delivery's age, so the whole schedule can be
walked through in a test with a made-up clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

# 10 s, 1 min, 10 min, 1 h, then every 6 h: a receiver that is down for a deploy gets the
# event within minutes, one that is down for a day still gets it, and nobody is hammered.
DEFAULT_DELAYS = (10.0, 60.0, 600.0, 3600.0, 21600.0)


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...] = DEFAULT_DELAYS
    give_up_after: timedelta = timedelta(hours=24)
    # Up to this fraction is added at random, so that deliveries that failed together (one
    # receiver down, thousands of events) do not all come back at the same second.
    jitter: float = 0.2

    def delay(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """The wait after `attempts` failed attempts (1-based)."""
        base = self.delays[min(max(attempts, 1), len(self.delays)) - 1]
        return timedelta(seconds=base * (1 + (rng or random).uniform(0, self.jitter)))

    def next_attempt(
        self,
        attempts: int,
        created_at: datetime,
        now: datetime,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """When to try again after `attempts` failures, or None once the next try would come
        later than `give_up_after` from the delivery's creation."""
        at = now + self.delay(attempts, rng)
        if at - created_at > self.give_up_after:
            return None
        return at
