"""Which CA an order goes to: the first in preference order that may and can issue.

A CA may issue when the domain's CAA records permit it (for our account at that CA). It can
issue unless it is held back: down (it failed, unreachable or answering 5xx, several times in a
row within a window; held back until a while after the last failure, when the next order tries
it again), or out of budget for the domain (its `rateLimited` answer said to wait, or our own
count of its limits leaves no room). A renewal goes to the CA of the current certificate first,
an open order to the CA it was placed at: they change CA only by the same rules.

Health is kept per process: each worker learns of an outage from its own first failures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

# The names of the CAs the domain's CAA records permit, as the DNS check of this pass found
# them (None: not known, e.g. an order started outside a worker pass; then every CA may).
PERMITTED_CAS: ContextVar[tuple[str, ...] | None] = ContextVar("permitted_cas", default=None)


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0
    # domain name -> monotonic time until which the CA asked us to wait for it
    limited: dict[str, float] = field(default_factory=dict)


class CaHealth:
    """What this process has seen of each CA lately (thread-safe)."""

    def __init__(
        self,
        *,
        down_after: int = 2,
        window: float = 300.0,
        recheck: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.down_after = down_after
        self.window = window
        self.recheck = recheck
        self.clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def failed(self, ca: str) -> None:
        """The CA could not be reached or answered 5xx (after the client's own retries)."""
        now = self.clock()
        with self._lock:
            record = self._records.setdefault(ca, _Record())
            if now - record.last_failure > self.window:
                record.failures = 0
            record.failures += 1
            record.last_failure = now

    def succeeded(self, ca: str) -> None:
        with self._lock:
            record = self._records.get(ca)
            if record is not None:
                record.failures = 0

    def is_down(self, ca: str) -> bool:
        now = self.clock()
        with self._lock:
            record = self._records.get(ca)
            if record is None or record.failures < self.down_after:
                return False
            return now - record.last_failure < self.recheck

    def limit(self, ca: str, domain: str, seconds: float) -> None:
        """The CA answered `rateLimited` for this domain: leave it alone that long."""
        with self._lock:
            record = self._records.setdefault(ca, _Record())
            record.limited[domain] = self.clock() + max(seconds, 0.0)

    def limited_for(self, ca: str, domain: str) -> float | None:
        """Seconds left of the CA's wait for this domain, or None."""
        now = self.clock()
        with self._lock:
            record = self._records.get(ca)
            until = record.limited.get(domain) if record is not None else None
            if until is None:
                return None
            if until <= now:
                del record.limited[domain]  # type: ignore[union-attr]
                return None
            return until - now


@dataclass(frozen=True)
class Candidate:
    """A CA to try, and why it is tried (said to the customer when it issues)."""

    name: str
    reason: str


def plan(
    preference: Sequence[str],
    *,
    domain: str,
    permitted: Collection[str] | None,
    health: CaHealth,
    sticky: str | None = None,
    sticky_reason: str = "",
) -> list[Candidate]:
    """The CAs to try for one order, best first; empty when CAA permits none of them.

    `sticky` is the CA of the current certificate (renewal) or of the open order: tried first
    when permitted and not held back. CAs held back come last, in preference order, so that an
    order is still attempted when every permitted CA is held back (the attempt then doubles as
    the check whether the CA is back).
    """
    allowed = [name for name in preference if permitted is None or name in permitted]
    if not allowed:
        return []
    skipped: list[str] = []
    for name in preference:
        if name not in allowed:
            continue
        why = held_back(name, domain, health)
        if why is None:
            break
        skipped.append(why)
    ready = [name for name in allowed if held_back(name, domain, health) is None]
    held = [name for name in allowed if name not in ready]
    order = ready + held
    if sticky is not None and sticky in ready:
        order.remove(sticky)
        order.insert(0, sticky)
    candidates = []
    for position, name in enumerate(order):
        if position == 0 and name == sticky and sticky_reason:
            reason = sticky_reason
        elif name in held:
            reason = f"every CA the CAA records allow is held back; trying {name} again"
        else:
            reason = _first_choice_reason(name, preference, allowed, skipped, permitted)
        candidates.append(Candidate(name, reason))
    return candidates


def held_back(name: str, domain: str, health: CaHealth) -> str | None:
    """Why the CA is held back for this domain, or None."""
    if health.is_down(name):
        return f"{name} was unavailable"
    if health.limited_for(name, domain) is not None:
        return f"{name} asked to wait before another order for {domain}"
    return None


def _first_choice_reason(
    name: str,
    preference: Sequence[str],
    allowed: Sequence[str],
    skipped: Sequence[str],
    permitted: Collection[str] | None,
) -> str:
    if permitted is not None and len(allowed) == 1 and len(preference) > 1:
        return f"the CAA records allow only {name}"
    reasons = list(skipped)
    before = preference[: preference.index(name)]
    refused = [other for other in before if other not in allowed]
    if refused:
        reasons.insert(0, f"the CAA records do not allow {_and(refused)}")
    if not reasons:
        # With one CA there is no choice to explain.
        return f"{name} is the first choice" if len(preference) > 1 else ""
    return "; ".join(reasons)


def _and(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]
