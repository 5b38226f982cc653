"""A per-token request rate limit: one token bucket per API token, in memory.

Each process keeps its own buckets, so with N API processes a token may make up to N times
the rate; that is enough to stop a runaway client from starving the others, which is the point.
Buckets are kept per token id, so their number is bounded by the tokens that exist.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """`per_second` requests on average, with bursts of up to `burst` requests."""

    per_second: float = 20.0
    burst: int = 40

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")


DEFAULT_RATE_LIMIT = RateLimit()


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by API token id. Safe to call from several threads."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: int) -> float | None:
        """Take one request from `key`'s bucket: None if allowed, else seconds to wait."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.limit.burst), now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(
                float(self.limit.burst), bucket.tokens + elapsed * self.limit.per_second
            )
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self.limit.per_second


def retry_after_header(wait: float) -> str:
    """Retry-After takes whole seconds; round up so that a client that obeys it succeeds."""
    return str(max(1, math.ceil(wait)))
