"""Click and open events, and the recorder that batches them to a sink off the request path."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from linkcert.tracking.tokens import TrackedKind, TrackedLink

logger = logging.getLogger(__name__)

ClickSink = Callable[[Sequence["Click"]], Awaitable[None] | None]
"""Where batches of clicks go. It may be a plain function or a coroutine function; a failure
(any exception) makes the recorder keep the batch and offer it again later."""


@dataclass(slots=True)  # not frozen: that costs a call per field on the edge's hot path
class Click:
    """One followed link ("click") or one loaded open pixel ("open"), at a UTC instant.

    `link` is what the token said (data, destination, mint time); `client` the client's
    address as the connection saw it (the sink applies `event_client_ip`); `user_agent` the
    header as sent (cut later); `machine` why it is not a person, or None.
    """

    domain: str
    link_id: int | None
    kind: TrackedKind
    at: datetime
    link: TrackedLink | None = None
    client: str | None = None
    user_agent: bytes | None = None
    machine: str | None = None


@dataclass(slots=True)
class ClickRecorderStats:
    """Running totals, for metrics. `pending` includes a batch the sink has not yet taken."""

    recorded: int = 0
    delivered: int = 0
    dropped: int = 0
    sink_failures: int = 0
    pending: int = 0


class ClickRecorder:
    """Collects clicks in memory and hands them to `sink` in batches from a background task.

    `record()` is O(1) and never waits on the sink. A batch goes out when `max_batch` clicks are
    waiting or the oldest has waited about `max_delay` seconds. When the sink raises, the batch is
    kept and offered again after a backoff doubling from `retry_initial` up to `retry_max`
    seconds; clicks keep being accepted meanwhile.

    Memory is bounded by `max_pending` clicks (waiting plus the batch being retried). Past that
    bound, while the sink stays down, new clicks are dropped: each is counted in
    `stats.dropped`, and a warning is logged at the first drop and then at most every
    `drop_log_interval` seconds with the number dropped since.

    `aclose()` flushes everything still waiting; a click recorded before it is never lost on a
    clean stop while the sink works. If the sink still fails after `close_timeout` seconds, the
    remaining clicks are counted as dropped and an error is logged.
    """

    def __init__(
        self,
        sink: ClickSink,
        *,
        max_batch: int = 500,
        max_delay: float = 1.0,
        max_pending: int = 100_000,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        close_timeout: float = 30.0,
        drop_log_interval: float = 10.0,
    ) -> None:
        if max_batch < 1 or max_pending < max_batch:
            raise ValueError("need max_batch >= 1 and max_pending >= max_batch")
        self._sink = sink
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._max_pending = max_pending
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._close_timeout = close_timeout
        self._drop_log_interval = drop_log_interval
        self._waiting: deque[Click] = deque()
        self._in_flight = 0
        self._oldest_at = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._drops_unlogged = 0
        self._last_drop_log = float("-inf")
        self._stats = ClickRecorderStats()

    @property
    def stats(self) -> ClickRecorderStats:
        """A snapshot of the totals."""
        stats = self._stats
        return ClickRecorderStats(
            recorded=stats.recorded,
            delivered=stats.delivered,
            dropped=stats.dropped,
            sink_failures=stats.sink_failures,
            pending=len(self._waiting) + self._in_flight,
        )

    def record(self, click: Click) -> bool:
        """Queue `click` for the sink. Returns False when it was dropped because memory is full.

        Must be called from the event loop thread; the first call starts the background task.
        """
        if self._closing:
            raise RuntimeError("this ClickRecorder is closed: record clicks before aclose()")
        waiting = self._waiting
        if len(waiting) + self._in_flight >= self._max_pending:
            self._note_drop()
            return False
        waiting.append(click)
        self._stats.recorded += 1
        if len(waiting) == 1:
            loop = asyncio.get_running_loop()
            self._oldest_at = loop.time()
            if self._task is None:
                self._task = loop.create_task(self._run(), name="click-recorder")
            self._wake.set()
        elif len(waiting) == self._max_batch:
            self._wake.set()
        return True

    async def aclose(self) -> None:
        """Deliver every waiting click, then stop. Safe to call more than once."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=self._close_timeout)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        lost = len(self._waiting) + self._in_flight
        if lost:
            self._stats.dropped += lost
            self._waiting.clear()
            self._in_flight = 0
            logger.error(
                "click sink still failing after %.0fs at shutdown: %d clicks lost",
                self._close_timeout,
                lost,
                extra={"clicks_lost": lost},
            )
        self._closed = True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                if self._closing:
                    return
                await self._wait_for_wake(until=None)
                continue
            if len(self._waiting) < self._max_batch and not self._closing:
                remaining = self._oldest_at + self._max_delay - loop.time()
                if remaining > 0:
                    await self._wait_for_wake(until=self._oldest_at + self._max_delay)
                    continue
            await self._deliver(self._take_batch(loop))

    async def _wait_for_wake(self, *, until: float | None) -> None:
        """Wait for record() or aclose() to signal, or for the loop time `until`."""
        # No await between the caller's checks and clear(), so no wake-up can be missed.
        self._wake.clear()
        try:
            async with asyncio.timeout_at(until):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _take_batch(self, loop: asyncio.AbstractEventLoop) -> tuple[Click, ...]:
        waiting = self._waiting
        size = min(self._max_batch, len(waiting))
        batch = tuple(waiting.popleft() for _ in range(size))
        self._in_flight = size
        if waiting:
            # What is left arrived while the previous batch was out: give it its own full delay.
            self._oldest_at = loop.time()
        return batch

    async def _deliver(self, batch: tuple[Click, ...]) -> None:
        failures = 0
        while True:
            try:
                result = self._sink(batch)
                if result is not None:
                    await result
            except Exception as exc:
                failures += 1
                self._stats.sink_failures += 1
                delay = min(self._retry_max, self._retry_initial * 2 ** (failures - 1))
                logger.warning(
                    "click sink failed (%s: %s); keeping %d clicks and retrying in %.1fs",
                    type(exc).__name__,
                    exc,
                    len(batch),
                    delay,
                    extra={
                        "clicks_pending": len(self._waiting) + len(batch),
                        "attempt": failures,
                        "retry_in_s": delay,
                    },
                )
                await asyncio.sleep(delay)
                continue
            self._stats.delivered += len(batch)
            self._in_flight = 0
            if failures:
                logger.info(
                    "click sink recovered after %d failed attempts",
                    failures,
                    extra={"attempts_failed": failures},
                )
            return

    def _note_drop(self) -> None:
        self._stats.dropped += 1
        self._drops_unlogged += 1
        now = asyncio.get_running_loop().time()
        if now - self._last_drop_log >= self._drop_log_interval:
            logger.warning(
                "click buffer full (%d clicks waiting for the sink): dropped %d new clicks",
                self._max_pending,
                self._drops_unlogged,
                extra={"clicks_dropped": self._drops_unlogged},
            )
            self._last_drop_log = now
            self._drops_unlogged = 0
