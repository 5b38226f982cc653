"""The origins the edge relays to in proxy mode: connection pools, passive health, round robin.

An `Origin` is one `http://HOST:PORT` or `https://HOST:PORT`. Each edge process keeps, per
origin, a pool of HTTP/1.1 keep-alive connections with a bound on how many are open at once;
a request that finds none idle and the bound reached waits for one (up to the connect timeout).

Health is passive: an origin that fails to connect, resets, times out or answers 5xx on
`max_fails` consecutive requests is left out for a backoff that doubles each time it fails
again after coming back, up to `backoff_max`; one good answer makes it healthy again.

`Upstreams` is a list of origins used in turn (round robin among the healthy ones). Origins are
shared: two lists naming the same origin share its pool, health and figures.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from linkcert.origins import OriginSpec, parse_origin

logger = logging.getLogger(__name__)

__all__ = ["OriginSpec", "parse_origin"]  # re-exported for the edge's users

# Upper bounds (seconds) of the per-origin latency histogram: time to the response's head.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """What every origin's pool and health follow. Times in seconds."""

    connect_timeout: float = 5.0
    max_connections: int = 256  # per origin, per edge process
    keepalive_timeout: float = 30.0  # an idle pooled connection is closed after this
    max_fails: int = 2  # consecutive failures that take an origin out
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    ca_bundle: Path | None = None  # for https origins; the system roots when None
    server_name: str | None = None  # SNI and the name verified for https origins


class ConnectionUser(Protocol):
    """The exchange using a leased connection: gets what the origin sends."""

    def upstream_data(self, data: bytes) -> None: ...
    def upstream_eof(self) -> None: ...
    def upstream_lost(self, exc: Exception | None) -> None: ...
    def upstream_paused(self) -> None: ...
    def upstream_resumed(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to an origin: idle in its pool, or leased to one exchange."""

    __slots__ = ("_idle_timer", "closed", "origin", "reused", "transport", "user")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.user: ConnectionUser | None = None
        self.closed = False
        self.reused = False  # leased before: it may have been closed by the origin meanwhile
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        user = self.user
        if user is not None:
            user.upstream_data(data)
        else:
            self.close()  # nothing is owed on an idle connection: it cannot be trusted

    def eof_received(self) -> bool | None:
        user = self.user
        if user is not None:
            user.upstream_eof()
        else:
            self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        user = self.user
        self.user = None
        if user is not None:
            user.upstream_lost(exc)

    def pause_writing(self) -> None:
        if self.user is not None:
            self.user.upstream_paused()

    def resume_writing(self) -> None:
        if self.user is not None:
            self.user.upstream_resumed()

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        """Close now (abort: what was owed is abandoned) and leave the pool."""
        self.user = None
        self._forget()
        if self.transport is not None:
            self.transport.abort()

    def _forget(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.origin.connection_closed(self)

    def park(self, timeout: float) -> None:
        """Idle in the pool; closed after `timeout` seconds unless leased again."""
        self.user = None
        self._idle_timer = asyncio.get_running_loop().call_later(timeout, self.close)
        if self.transport is not None:
            self.transport.resume_reading()  # notice the origin closing it

    def lease(self, user: ConnectionUser) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.user = user


@dataclass(slots=True)
class OriginStats:
    """Running totals for one origin, read by the metrics collector."""

    requests: int = 0
    responses_by_class: Counter[str] = field(default_factory=Counter)  # "2xx" ...
    failures: Counter[str] = field(default_factory=Counter)  # refused, reset, timeout, ...
    retries: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def observe_latency(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


class OriginBusy(Exception):
    """No connection could be had within the connect timeout: the pool stayed full."""


class Origin:
    """One origin: its connection pool, its health and its figures."""

    def __init__(self, spec: OriginSpec, settings: PoolSettings) -> None:
        self.spec = spec
        self.label = spec.label
        self.settings = settings
        self.stats = OriginStats()
        self._ssl: ssl.SSLContext | None = None
        if spec.scheme == "https":
            self._ssl = ssl.create_default_context(
                cafile=None if settings.ca_bundle is None else str(settings.ca_bundle)
            )
            self._ssl.set_alpn_protocols(["http/1.1"])
        self._idle: deque[UpstreamConnection] = deque()
        self._waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self.open = 0  # connections open or being opened
        # Health.
        self.consecutive_failures = 0
        self.down_until = 0.0
        self._backoff = settings.backoff_initial
        self._clock: Callable[[], float] = time.monotonic

    # Health ----------------------------------------------------------------------------------

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def succeeded(self) -> None:
        if self.consecutive_failures:
            if self.down_until:
                logger.info("origin %s answers again", self.label, extra={"origin": self.label})
            self.consecutive_failures = 0
            self.down_until = 0.0
            self._backoff = self.settings.backoff_initial

    def failed(self, reason: str) -> None:
        self.stats.failures[reason] += 1
        self.consecutive_failures += 1
        if self.consecutive_failures < self.settings.max_fails:
            return
        now = self._clock()
        if now < self.down_until:
            return  # already out
        if self.down_until:
            # It came back and failed again: wait longer this time.
            self._backoff = min(self._backoff * 2, self.settings.backoff_max)
        self.down_until = now + self._backoff
        logger.warning(
            "origin %s left out for %.0f s after %d failures in a row (last: %s)",
            self.label,
            self._backoff,
            self.consecutive_failures,
            reason,
            extra={"origin": self.label},
        )

    # Pool ------------------------------------------------------------------------------------

    @property
    def idle(self) -> int:
        return len(self._idle)

    def take_idle(self) -> UpstreamConnection | None:
        """A pooled connection ready to use, if there is one (no waiting)."""
        idle = self._idle
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if not connection.closed:
                connection.reused = True
                return connection
        return None

    async def connect(self, user: ConnectionUser) -> UpstreamConnection:
        """A connection leased to `user`: a pooled one, a new one, or one freed by another
        request when the pool is full. Raises OSError or TimeoutError (connect), OriginBusy."""
        connection = self.take_idle()
        if connection is not None:
            connection.lease(user)
            return connection
        timeout = self.settings.connect_timeout
        if self.open >= self.settings.max_connections:
            waiter: asyncio.Future[UpstreamConnection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    handed = await waiter
            except BaseException as exc:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled():
                    # Handed over just as the wait ended: pass it on, do not lose it.
                    self._hand_back(waiter.result())
                else:
                    waiter.cancel()
                if isinstance(exc, TimeoutError):
                    raise OriginBusy(self.label) from None
                raise
            if handed is not None and handed.closed:
                # Closed by the origin between its release and now; its place was passed on.
                return await self.connect(user)
            if handed is not None:
                handed.reused = True
                handed.lease(user)
                return handed
            # A connection closed: its place is ours (open was counted for us already).
        else:
            self.open += 1
        try:
            async with asyncio.timeout(timeout):
                _, protocol = await asyncio.get_running_loop().create_connection(
                    lambda: UpstreamConnection(self),
                    self.spec.host,
                    self.spec.port,
                    ssl=self._ssl,
                    server_hostname=(self.settings.server_name or self.spec.host)
                    if self._ssl is not None
                    else None,
                )
        except BaseException:
            self._place_freed()
            raise
        protocol.lease(user)
        return protocol

    def release(self, connection: UpstreamConnection, *, reusable: bool) -> None:
        """Give a leased connection back: to the pool if its last exchange ended cleanly."""
        if connection.closed:
            return
        if not reusable:
            connection.close()  # connection_closed hands its place on
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                connection.user = None
                waiter.set_result(connection)
                return
        connection.park(self.settings.keepalive_timeout)
        self._idle.append(connection)

    def _hand_back(self, handed: UpstreamConnection | None) -> None:
        if handed is None:
            self._place_freed()
        else:
            self.release(handed, reusable=True)

    def connection_closed(self, connection: UpstreamConnection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        self._place_freed()

    def _place_freed(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the waiter opens a connection in this place
                return
        self.open -= 1

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class Upstreams:
    """An ordered list of origins used in turn."""

    __slots__ = ("_next", "origins")

    def __init__(self, origins: tuple[Origin, ...]) -> None:
        if not origins:
            raise ValueError("an upstream list needs at least one origin")
        self.origins = origins
        self._next = 0

    def pick(self, now: float, avoid: Origin | None = None) -> Origin | None:
        """The next healthy origin (not `avoid`). When none is healthy, the one whose backoff
        ends first, so that a recovered origin is found without waiting out every backoff.
        None only when `avoid` is the only origin."""
        origins = self.origins
        count = len(origins)
        start = self._next
        for step in range(count):
            origin = origins[(start + step) % count]
            if origin is not avoid and origin.healthy(now):
                self._next = (start + step + 1) % count
                return origin
        others = [origin for origin in origins if origin is not avoid]
        if not others:
            return None
        return min(others, key=lambda origin: origin.down_until)


class OriginRegistry:
    """Every origin this edge process relays to, one object per address."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._origins: dict[OriginSpec, Origin] = {}
        self._lists: dict[tuple[OriginSpec, ...], Upstreams] = {}

    def upstreams(self, specs: tuple[OriginSpec, ...]) -> Upstreams:
        found = self._lists.get(specs)
        if found is None:
            origins = tuple(self._origin(spec) for spec in specs)
            found = self._lists[specs] = Upstreams(origins)
        return found

    def _origin(self, spec: OriginSpec) -> Origin:
        origin = self._origins.get(spec)
        if origin is None:
            origin = self._origins[spec] = Origin(spec, self.settings)
        return origin

    @property
    def origins(self) -> list[Origin]:
        return list(self._origins.values())

    def close(self) -> None:
        for origin in self._origins.values():
            origin.close()
