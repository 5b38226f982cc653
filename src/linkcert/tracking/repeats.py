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

# Keys remembered per edge process: about 100 bytes each (two integers and a dict slot).
MAX_KEYS = 100_000
# A window's count lives in the low bits of its entry, its start (in milliseconds) above them.
_COUNT_BITS = 24
_COUNT_MASK = (1 << _COUNT_BITS) - 1


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
        if not 0 <= limit <= _COUNT_MASK or window <= 0 or max_keys < 1:
            raise ValueError("a repeat limit needs 0 <= limit < 2**24, window > 0, max_keys >= 1")
        self.limit = limit  # 0: no limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._window_ms = int(window * 1000)
        # hash(key) → window start in ms << _COUNT_BITS | recordings in it; oldest start first.
        self._windows: dict[int, int] = {}
        self._started = 0  # windows started: expired ones are looked for every 64th

    def allow(self, key: Hashable) -> bool:
        if not self.limit:
            return True
        now = int(self._clock() * 1000)
        digest = hash(key)
        windows = self._windows
        entry = windows.get(digest)
        if entry is not None:
            if now - (entry >> _COUNT_BITS) < self._window_ms:
                if entry & _COUNT_MASK >= self.limit:
                    return False
                windows[digest] = entry + 1
                return True
            del windows[digest]  # a new window: to the end, in order of start
        windows[digest] = now << _COUNT_BITS | 1
        self._started += 1
        if len(windows) > self.max_keys or not self._started & 63:
            self._forget_old(now)
        return True

    def _forget_old(self, now: int) -> None:
        windows = self._windows
        while windows:
            oldest = next(iter(windows))
            if (
                len(windows) <= self.max_keys
                and now - (windows[oldest] >> _COUNT_BITS) < self._window_ms
            ):
                break
            del windows[oldest]

    def __len__(self) -> int:
        return len(self._windows)
