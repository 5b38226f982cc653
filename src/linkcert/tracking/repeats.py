"""A bound on recorded repeats: one client address following one link over and over.

A replayed link (a script, a crawler, a person reloading) is still answered, but past `limit`
recordings from one address in `window` seconds it is no longer recorded, so that nobody can
fill the database with clicks. Each edge process keeps its own table, bounded in size: it
remembers a key's count from the first recording of its window, and forgets the oldest windows
first when full.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

# Keys remembered per edge process: about 150 bytes each (a 64-bit hash and its window).
MAX_KEYS = 100_000


class RepeatLimiter:
    """`allow(key)`: whether to record one more event for `key` (client, host, token, kind)."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0 or window <= 0 or max_keys < 1:
            raise ValueError("a repeat limit needs limit >= 0, window > 0 and max_keys >= 1")
        self.limit = limit  # 0: no limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        # hash(key) → [window start, recordings in it]; in order of window start, oldest first.
        self._windows: dict[int, list[float]] = {}

    def allow(self, key: Hashable) -> bool:
        if not self.limit:
            return True
        now = self._clock()
        digest = hash(key)
        windows = self._windows
        current = windows.get(digest)
        if current is not None and now - current[0] < self.window:
            if current[1] >= self.limit:
                return False
            current[1] += 1
            return True
        if current is not None:
            del windows[digest]  # a new window: to the end, in order of start
        windows[digest] = [now, 1]
        self._forget_old(now)
        return True

    def _forget_old(self, now: float) -> None:
        windows = self._windows
        while windows:
            oldest = next(iter(windows))
            if len(windows) <= self.max_keys and now - windows[oldest][0] < self.window:
                break
            del windows[oldest]

    def __len__(self) -> int:
        return len(self._windows)
