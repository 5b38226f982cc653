"""One client connection: TLS if secure, HTTP/1.x parsing with httptools, limits, keep-alive,
pipelining.

Requests on a connection are answered strictly in order. Nearly all are answered synchronously
inside `data_received`, and every response produced for one read goes out in a single write. A
request that has to wait (an ACME challenge lookup) makes later pipelined requests queue behind
it, and reading pauses until it is answered, so the queue is never longer than one read.

Timeouts are deadlines that the server's sweeper checks once a second: keeping them costs a few
attribute writes per request instead of a timer.

Bounds: a new connection must send its first byte (a request, or a ClientHello) within
`first_byte_timeout`, and a process holds at most `max_connections`, at most
`max_connections_per_address` of them from one client address (an IPv6 /64 counts as one).
A new connection over a bound takes the place of the oldest idle one (no request in progress:
not yet spoken, or kept alive between requests; a full process closes a small share of its
bound at once); when none is idle, the new one is refused. Keeping track costs two attribute
writes per request: the idle ones are looked for only when a bound is reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import httptools

from linkcert.edge import responses
from linkcert.edge.counters import EdgeCounters
from linkcert.edge.proxy import Exchange, ProxyRoutes, build_request_head, peer_host
from linkcert.edge.responses import Response
from linkcert.edge.routes import Router, host_from_header, proxy_target
from linkcert.edge.tls import count_handshake_error
from linkcert.edge.tlssession import CertificateWanted, TlsSession

logger = logging.getLogger(__name__)

_NEVER = float("inf")
_LINGER_SECONDS = 2.0
_PAUSED_FOR_WRITING = 1
_PAUSED_FOR_WAITING = 2
# At its bound, a process closes this share of its bound of its oldest idle connections at once.
_EVICTED_SHARE = 64
_PAUSED_FOR_UPSTREAM = 4  # proxy mode: the origin is not taking the request body as fast
_PAUSED_FOR_CERTIFICATE = 8  # the handshake waits for its certificate to be loaded
_SLOW_LOG_INTERVAL = 60.0

# Loads a served name's certificate into memory (the integrator's, e.g. from the store);
# returns whether it is there now.
CertificateLoader = Callable[[str], Awaitable[bool]]


@dataclass(slots=True)
class Limits:
    max_header_bytes: int
    max_body_bytes: int
    idle_timeout: float
    request_timeout: float
    handshake_timeout: float
    max_target_bytes: int = 1 << 30
    first_byte_timeout: float = 5.0
    max_connections: int = 0  # 0: no bound
    max_connections_per_address: int = 0  # 0: no bound
    # The longest a handshake waits for its certificate to be loaded (see certs.py).
    certificate_wait: float = 5.0


def address_key(peer: object) -> str | None:
    """The client address a per-address bound counts: an IPv4 address, or an IPv6 /64 (what one
    subscriber is usually given); an IPv4-mapped IPv6 address counts as its IPv4 address."""
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return None
    host = peer[0]
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return f"{int(address) >> 64:x}::/64"


class ConnectionHub:
    """What every connection shares: routing, counters, limits and the set of live ones."""

    def __init__(
        self,
        router: Router,
        counters: EdgeCounters,
        limits: Limits,
        tls_context: ssl.SSLContext,
        proxy: ProxyRoutes | None = None,
        certificate_loader: CertificateLoader | None = None,
    ) -> None:
        self.router = router
        self.certificate_loader = certificate_loader
        self.proxy = proxy if proxy is not None and proxy.mode != "tracking" else None
        self.counters = counters
        self.limits = limits
        self.tls_context = tls_context
        self.connections: set[HttpConnection] = set()
        self.by_address: dict[str, dict[HttpConnection, None]] = {}
        self.draining = False
        self.now = 0.0  # a coarse clock, refreshed by the sweeper
        self._slow_certificates = 0
        self._slow_logged_at = -_SLOW_LOG_INTERVAL
        self.all_closed = asyncio.Event()

    def note_slow_certificate(self, name: str) -> None:
        """Log a certificate that did not load in time: the first at once, then at most one
        line a minute saying how many more (a database outage would otherwise log one line
        per handshake)."""
        self._slow_certificates += 1
        if self.now - self._slow_logged_at < _SLOW_LOG_INTERVAL:
            return
        more = self._slow_certificates - 1
        logger.warning(
            "the certificate of %s did not load within %.0f s%s",
            name,
            self.limits.certificate_wait,
            f" (and {more} other handshakes since the last such line)" if more else "",
        )
        self._slow_certificates = 0
        self._slow_logged_at = self.now

    def admit(self, connection: HttpConnection, address: str | None) -> str | None:
        """Make room for a new connection; the reason it is refused, or None."""
        limits = self.limits
        per_address = limits.max_connections_per_address
        if per_address and address is not None:
            group = self.by_address.get(address)
            if group is not None and len(group) >= per_address:
                victim = _oldest_idle(group)
                if victim is None:
                    return "address_cap"
                victim.evict("address_cap")
        if (
            limits.max_connections
            and len(self.connections) >= limits.max_connections
            and not self._close_oldest_idle()
        ):
            return "process_cap"
        self.connections.add(connection)
        if address is not None:
            group = self.by_address.get(address)
            if group is None:
                group = self.by_address[address] = {}
            group[connection] = None
        return None

    def _close_oldest_idle(self) -> bool:
        """Close the process's oldest idle connections, a small share of the bound at once, so
        that a flood at the bound costs one scan of the connections per many new ones. Whether
        any could be closed."""
        share = max(1, self.limits.max_connections // _EVICTED_SHARE)
        idle = (connection for connection in self.connections if connection.closable())
        oldest = heapq.nsmallest(share, idle, key=_idle_order)
        for connection in oldest:
            connection.evict("process_cap")
        return bool(oldest)

    def forget(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        address = connection.address
        if address is not None:
            group = self.by_address.get(address)
            if group is not None:
                group.pop(connection, None)
                if not group:
                    del self.by_address[address]
        if self.draining and not self.connections:
            self.all_closed.set()


def _oldest_idle(group: dict[HttpConnection, None]) -> HttpConnection | None:
    oldest: HttpConnection | None = None
    for connection in group:
        if connection.closable() and (oldest is None or connection.idle_since < oldest.idle_since):
            oldest = connection
    return oldest


def _idle_order(connection: HttpConnection) -> tuple[float, int]:
    return connection.idle_since, connection.serial


class _Rejected(Exception):
    """Raised inside a parser callback to stop reading a request that breaks a limit."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class _Request:
    __slots__ = ("host", "http10", "keep_alive", "method", "target", "user_agent")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        host: str | None,
        keep_alive: bool,
        http10: bool,
        user_agent: bytes | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.host = host
        self.keep_alive = keep_alive
        self.http10 = http10
        self.user_agent = user_agent


# Queued behind a waiting request: another request (answered here or relayed), or the final
# bytes before closing.
_Queued = _Request | Exchange | bytes


class HttpConnection(asyncio.Protocol):
    """Serves one TCP connection; with `secure` it speaks TLS first."""

    # Slots keep tens of thousands of open connections small.
    __slots__ = (
        "_body_bytes",
        "_body_limit",
        "_close_after_output",
        "_done",
        "_head_bytes",
        "_head_raw_bytes",
        "_headers",
        "_heard",
        "_host",
        "_hosts_seen",
        "_hub",
        "_in_head",
        "_in_message",
        "_linger",
        "_lingering",
        "_loading",
        "_messages_begun",
        "_out",
        "_parser",
        "_peer",
        "_proxied",
        "_proxy",
        "_queue",
        "_read_paused",
        "_secure",
        "_target",
        "_tls",
        "_tls_name",
        "_transport",
        "_user_agent",
        "_waiting",
        "_write_paused",
        "address",
        "deadline",
        "idle_since",
        "serial",
    )

    def __init__(self, hub: ConnectionHub, *, secure: bool) -> None:
        self._hub = hub
        self._secure = secure
        self._transport: asyncio.Transport | None = None
        self._tls: TlsSession | None = None
        self._tls_name: str | None = None
        self._parser = httptools.HttpRequestParser(self)
        self.deadline = _NEVER
        self.address: str | None = None
        self.idle_since = _NEVER  # when it last became idle; _NEVER while a request is on
        self.serial = 0  # the order of acceptance
        self._heard = False  # whether the client has sent a byte
        # The request being read.
        self._in_message = False
        self._in_head = False
        self._messages_begun = 0
        self._target = b""
        self._host: bytes | None = None
        self._user_agent: bytes | None = None
        self._peer: str | None = None
        self._hosts_seen = 0
        self._head_bytes = 0
        self._head_raw_bytes = 0
        self._body_bytes = 0
        self._body_limit = hub.limits.max_body_bytes
        # Proxy mode: the head's fields, and the exchange relaying the request being read.
        self._headers: list[tuple[bytes, bytes]] | None = None
        self._proxied: Exchange | None = None
        # Answering.  `_proxy` is the relayed request whose response is being sent.
        self._proxy: Exchange | None = None
        self._out: list[bytes] | None = None
        self._close_after_output = False
        self._linger = False
        self._lingering = False
        self._queue: deque[_Queued] = deque()
        self._waiting: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._done = False  # no further request will be answered
        self._read_paused = 0
        self._write_paused = False

    # Connection life ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        hub = self._hub
        hub.counters.connections_accepted += 1
        self.serial = hub.counters.connections_accepted
        # uvloop's transports do not derive from asyncio's classes, but behave alike.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) and peer else None
        self.address = address = address_key(peer)
        refused = hub.admit(self, address)
        if refused is not None:
            hub.counters.connections_refused[refused] += 1
            self.address = None
            self._done = True
            self._transport.abort()
            return
        self.idle_since = hub.now
        if self._secure:
            self._tls = TlsSession(hub.tls_context)
        # The coarse clock may be a sweep old: a new connection's first deadline, the shortest
        # one, is counted from the true time, so that it never gets less than its limit.
        self.deadline = asyncio.get_running_loop().time() + hub.limits.first_byte_timeout

    def closable(self) -> bool:
        """Whether closing this connection would free a place: open and idle."""
        transport = self._transport
        return (
            self.idle_since != _NEVER
            and transport is not None
            and not transport.is_closing()
            and self._waiting is None
            and self._proxy is None
        )

    def evict(self, reason: str) -> None:
        """Close this idle connection to make room for a new one."""
        hub = self._hub
        hub.counters.connections_closed[reason] += 1
        hub.forget(self)
        transport = self._transport
        if self._done or transport is None:
            if transport is not None:
                transport.close()
            return
        if self._tls is not None and not self._tls.established:
            self._done = True
            transport.close()
            return
        self._finish(b"")  # with close_notify on TLS

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tls is not None and not self._tls.established and not self._done:
            self._hub.counters.handshakes_failed["client_closed"] += 1
        self._done = True
        self.deadline = _NEVER
        if self._waiting is not None:
            self._waiting.cancel()
        if self._loading is not None:
            self._loading.cancel()
        for exchange in (self._proxy, self._proxied):
            if exchange is not None:
                exchange.client_gone()
        self._proxy = self._proxied = None
        self._hub.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading(_PAUSED_FOR_WRITING)
        # A client that stops reading gets as long as an idle one to start again.
        self.deadline = self._hub.now + self._hub.limits.idle_timeout
        if self._proxy is not None:
            self._proxy.client_paused()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._resume_reading(_PAUSED_FOR_WRITING)
        self._set_idle_deadline()
        if self._proxy is not None:
            self._proxy.client_resumed()

    def eof_received(self) -> bool | None:
        if self._lingering:
            return None  # the client has closed its side after reading the error: close
        tls = self._tls
        if tls is not None and not tls.established and not self._done:
            self._hub.counters.handshakes_failed["client_closed"] += 1
            self._done = True
            return None
        if self._in_message and self._proxied is not None:
            # Gone in the middle of a body being relayed: the origin would wait for the rest.
            self.abort()
            return None
        # The client will send nothing more: answer what is owed, then close.
        self._finish(b"")
        return True

    def check_deadline(self, now: float) -> None:
        """Called by the sweeper: close a connection that has idled or stalled too long."""
        transport = self._transport
        if now < self.deadline or transport is None or self._waiting is not None:
            return
        self.deadline = _NEVER
        counters = self._hub.counters
        tls = self._tls
        if tls is not None and not tls.established:
            counters.handshakes_failed["timeout"] += 1
            if self._heard:
                counters.connections_closed["handshake_timeout"] += 1
            else:
                counters.connections_closed["first_byte_timeout"] += 1
            self._done = True
            transport.abort()
        elif self._write_paused:
            counters.connections_closed["write_stalled"] += 1
            self._done = True
            transport.abort()
        elif self._in_message and self._proxied is not None:
            # A relayed body that stopped coming: the origin must not wait for it.
            exchange = self._proxied
            if exchange is self._proxy and exchange.sent_to_client:
                self.abort()
                return
            self._drop_exchange(exchange)
            self._hub.counters.request_timeouts += 1
            self._count_status(408)
            self._linger = True
            self._finish(responses.render_error_and_close(responses.REQUEST_TIMEOUT))
            self._flush()
        elif self._in_message and not self._done:
            counters.request_timeouts += 1
            self._count_status(408)
            self._finish(responses.render_error_and_close(responses.REQUEST_TIMEOUT))
        else:
            # Idle, or lingering after an error response.
            if not self._heard:
                counters.connections_closed["first_byte_timeout"] += 1
            elif not self._lingering:
                counters.connections_closed["idle_timeout"] += 1
            self._done = True
            transport.close()

    def begin_drain(self) -> None:
        """Server shutdown: close a connection idle between requests now; answer the rest first.

        A connection that has not finished its first request (its handshake may not be done
        either) belongs to a client that is sending one right now: closing it would fail that
        click, so it gets its answer, with `Connection: close`, within the usual handshake and
        request deadlines. Only a keep-alive connection idle after a response is closed at
        once, which HTTP clients expect and retry.
        """
        transport = self._transport
        if transport is None:
            return
        if self._messages_begun == 0 and not self._done:
            pass  # the first request is on its way: it will be answered, then closed
        elif self._waiting is not None or self._queue or self._proxy is not None:
            pass  # the last answer owed closes the connection
        elif self._done:
            transport.close()  # already closing, or lingering after an error
        elif not self._in_message:
            self._finish(b"")

    def abort(self) -> None:
        self._done = True
        if self._transport is not None:
            self._transport.abort()

    # Reading -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._out = []
        tls = self._tls
        if not self._heard:
            self._heard = True
            if tls is not None:
                # The ClientHello has begun: the handshake gets its own time from here.
                self.deadline = self._hub.now + self._hub.limits.handshake_timeout
        if tls is not None:
            data = self._decrypt(data)
            if not data:
                if tls.peer_closed and not self._done:
                    self.eof_received()
                self._flush()
                return
        was_in_head = self._in_head
        messages_begun = self._messages_begun
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if self._done:
                pass
            elif isinstance(cause, _Rejected):
                self._reject(cause.response)
            else:
                logger.error("unexpected error while reading a request", exc_info=cause)
                self._reject(responses.INTERNAL_ERROR)
        except httptools.HttpParserUpgrade:
            # The request itself was answered; other protocols are not spoken here.
            self._finish(b"")
        except httptools.HttpParserError:
            # After a response that closes the connection, llhttp refuses any further bytes:
            # that is expected, not the client's fault.
            if not self._done:
                self._reject(responses.BAD_REQUEST)
        else:
            if was_in_head and self._in_head and self._messages_begun == messages_begun:
                # This whole read was part of one request head: count it even though the parser
                # has not yet handed over the header it is in the middle of.
                self._head_raw_bytes += len(data)
                if self._head_raw_bytes > self._hub.limits.max_header_bytes:
                    self._reject(responses.HEADERS_TOO_LARGE)
        if tls is not None and tls.peer_closed and not self._done:
            self.eof_received()
        self._flush()

    def _decrypt(self, data: bytes) -> bytes:
        tls = self._tls
        assert tls is not None
        was_established = tls.established
        try:
            plaintext = tls.receive(data)
        except CertificateWanted as wanted:
            loader = self._hub.certificate_loader
            if wanted.replayable and loader is not None:
                self._pause_reading(_PAUSED_FOR_CERTIFICATE)
                self._loading = asyncio.get_running_loop().create_task(
                    self._load_certificate(wanted.name, loader)
                )
            else:
                self._refuse_handshake()
            return b""
        except ssl.SSLError as exc:
            if not tls.established:
                count_handshake_error(self._hub.counters, exc)
            # Send the alert OpenSSL prepared, then close.
            self._done = True
            self._close_after_output = True
            return b""
        if not was_established and tls.established:
            self._hub.counters.handshakes_completed += 1
            self._tls_name = tls.server_name
            self.deadline = self._hub.now + self._hub.limits.idle_timeout
        return plaintext

    async def _load_certificate(self, name: str, loader: CertificateLoader) -> None:
        """Wait (a bounded time) for `name`'s certificate, then replay the ClientHello."""
        try:
            async with asyncio.timeout(self._hub.limits.certificate_wait):
                loaded = await loader(name)
        except TimeoutError:
            loaded = False
            self._hub.note_slow_certificate(name)
        except Exception:
            loaded = False
            logger.exception("loading the certificate of %s failed", name)
        finally:
            self._loading = None
        tls = self._tls
        if self._done or tls is None:
            return
        if not loaded:
            self._out = []
            self._refuse_handshake()
            self._flush()
            return
        tls.restart()
        self._resume_reading(_PAUSED_FOR_CERTIFICATE)
        self.data_received(b"")

    def _refuse_handshake(self) -> None:
        """End a handshake whose certificate could not be had: the alert, then close."""
        assert self._tls is not None
        self._hub.counters.handshakes_failed["certificate_unavailable"] += 1
        self._tls.refuse()
        self._done = True
        self._close_after_output = True

    def on_message_begin(self) -> None:
        self.idle_since = _NEVER
        self._in_message = True
        self._in_head = True
        self._messages_begun += 1
        self._target = b""
        self._host = None
        self._user_agent = None
        self._hosts_seen = 0
        self._head_bytes = 0
        self._head_raw_bytes = 0
        self._body_bytes = 0
        hub = self._hub
        self._body_limit = hub.limits.max_body_bytes
        self._headers = [] if hub.proxy is not None else None
        self.deadline = hub.now + hub.limits.request_timeout

    def on_url(self, url: bytes) -> None:
        self._target += url
        self._head_bytes += len(url)
        limits = self._hub.limits
        if self._head_bytes > limits.max_header_bytes:
            raise _Rejected(responses.HEADERS_TOO_LARGE)
        if len(self._target) > limits.max_target_bytes:
            raise _Rejected(responses.URI_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._hub.limits.max_header_bytes:
            raise _Rejected(responses.HEADERS_TOO_LARGE)
        if not self._in_head:
            return  # a trailer after a chunked body: neither read nor passed on
        if len(name) == 4 and name.lower() == b"host":
            self._host = value
            self._hosts_seen += 1
        elif len(name) == 10 and name.lower() == b"user-agent":
            self._user_agent = value
        headers = self._headers
        if headers is not None:
            headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        proxy = self._hub.proxy
        if proxy is not None and not self._done:
            self._relay_if_wanted(proxy)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._body_limit:
            raise _Rejected(
                responses.BODY_TOO_LARGE
                if self._proxied is None
                else responses.REQUEST_BODY_TOO_LARGE
            )
        exchange = self._proxied
        if exchange is not None:
            exchange.feed(body)
            # A body that keeps coming is not a stalled request.
            self.deadline = self._hub.now + self._hub.limits.request_timeout

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._done:
            return
        exchange = self._proxied
        if exchange is not None:
            self._proxied = None
            exchange.end_body()
            if exchange is self._proxy:
                # Its answer is on its way: read no further until it has been sent.
                self._pause_reading(_PAUSED_FOR_WAITING)
                self.deadline = _NEVER
            return
        parser = self._parser
        http10 = parser.get_http_version() == "1.0"
        raw_host = self._host
        host = None if raw_host is None else host_from_header(raw_host)
        if self._hosts_seen > 1 or (host is None and not http10):
            # HTTP/1.1 requires exactly one Host header.
            self._reject(responses.BAD_REQUEST if self._hosts_seen > 1 else responses.MISSING_HOST)
            return
        if host is None:
            host = self._tls_name
        request = _Request(
            parser.get_method(),
            self._target,
            host,
            parser.should_keep_alive(),
            http10,
            self._user_agent,
        )
        if self._waiting is not None or self._queue or self._proxy is not None:
            self._queue.append(request)
        else:
            self._answer(request)
            self._set_idle_deadline()

    # Proxy mode --------------------------------------------------------------------------

    def _relay_if_wanted(self, proxy: ProxyRoutes) -> None:
        """Called when a request's head is complete: start relaying it if it is for the
        origin; otherwise it is answered here once read, as in tracking mode."""
        if self._hosts_seen > 1:
            raise _Rejected(responses.BAD_REQUEST)
        raw_host = self._host
        parser = self._parser
        method = parser.get_method()
        if method == b"CONNECT":
            return
        relayed = proxy_target(self._target, raw_host)
        if relayed is None:
            return
        target, raw_host, path = relayed
        host = host_from_header(raw_host) if raw_host else None
        if host is None or raw_host is None:
            return
        if not proxy.relays(path, host, self._hub.router):
            return
        tls_name = self._tls_name
        if tls_name is not None and host != tls_name:
            raise _Rejected(responses.MISDIRECTED)
        if not proxy.serves(host):
            return  # not a name linkcert serves: answered (refused) here, never relayed
        peer = peer_host(self._transport)
        assert self._headers is not None
        head = build_request_head(
            method=method,
            target=target,
            headers=self._headers,
            host=raw_host,
            peer=peer,
            secure=self._secure,
            trusted=proxy.trusted(peer),
        )
        self._headers = None
        limit = proxy.settings.max_body_bytes
        if head.content_length > limit:
            raise _Rejected(responses.REQUEST_BODY_TOO_LARGE)
        self._body_limit = limit
        exchange = Exchange(
            proxy,
            self,
            proxy.upstreams_for(host),
            head,
            method=method,
            client_http10=parser.get_http_version() == "1.0",
            client_keep_alive=parser.should_keep_alive(),
        )
        self._proxied = exchange
        self._hub.counters.requests += 1
        self._hub.counters.proxied_requests += 1
        if self._waiting is None and not self._queue and self._proxy is None:
            self._proxy = exchange
            if self._write_paused:
                exchange.client_paused()
            exchange.start()
        else:
            self._queue.append(exchange)

    @property
    def draining(self) -> bool:
        return self._hub.draining

    def proxy_send(self, data: bytes) -> None:
        self._emit(data)

    def proxy_pause_upload(self) -> None:
        self._pause_reading(_PAUSED_FOR_UPSTREAM)

    def proxy_resume_upload(self) -> None:
        self._resume_reading(_PAUSED_FOR_UPSTREAM)

    def proxy_done(self, *, close: bool) -> None:
        """The relayed response has been sent whole."""
        exchange = self._proxy
        self._proxy = None
        if self._done:
            return
        if close or self._hub.draining:
            if exchange is not None and exchange is self._proxied:
                # The client is still sending a body nobody will read: let it see the answer.
                self._proxied = None
                self._linger = True
            self._finish_now()
            return
        self._continue()

    def proxy_failed(self, response: Response, *, close: bool, http10: bool) -> None:
        """No origin answered: send the edge's own error page instead."""
        exchange = self._proxy
        self._proxy = None
        if self._done:
            return
        self._count_status(response.status)
        keep_alive = not close and not self._hub.draining
        self._emit(
            responses.render(response, head_only=False, keep_alive=keep_alive, http10=http10)
        )
        if not keep_alive:
            if exchange is not None and exchange is self._proxied:
                self._proxied = None
                self._linger = True
            self._finish_now()
            return
        self._continue()

    def proxy_abort(self) -> None:
        self._proxy = None
        self.abort()

    def _finish_now(self) -> None:
        self._done = True
        self._queue.clear()
        self._stop_after_output()

    def _drop_exchange(self, exchange: Exchange) -> None:
        exchange.client_gone()
        if exchange is self._proxy:
            self._proxy = None
        if exchange is self._proxied:
            self._proxied = None
        with contextlib.suppress(ValueError):
            self._queue.remove(exchange)

    def _continue(self) -> None:
        """After a relayed response: answer or relay what was pipelined behind it."""
        # With nothing queued (the usual case) there is nothing to write either.
        outer = self._out is not None or not self._queue
        if not outer:
            self._out = []
        while self._queue and self._waiting is None and self._proxy is None:
            queued = self._queue.popleft()
            if isinstance(queued, bytes):
                self._finish(queued)
            elif isinstance(queued, Exchange):
                self._proxy = queued
                if self._write_paused:
                    queued.client_paused()
                queued.start()
            else:
                self._answer(queued)
        if not outer:
            self._flush()
        if self._done:
            return
        if self._waiting is None and (self._proxy is None or self._proxy is self._proxied):
            self._resume_reading(_PAUSED_FOR_WAITING)
            self._set_idle_deadline()

    # Answering ---------------------------------------------------------------------------

    def _answer(self, request: _Request) -> None:
        hub = self._hub
        hub.counters.requests += 1
        try:
            result = hub.router.route(
                request.method,
                request.target,
                request.host,
                self._tls_name,
                self.address,
                request.user_agent,
                self._peer,
            )
        except Exception:
            logger.exception("unexpected error while answering a request")
            result = responses.INTERNAL_ERROR
        if isinstance(result, Response):
            self._respond(request, result)
        else:
            self._waiting = asyncio.get_running_loop().create_task(
                self._answer_when_ready(request, result)
            )
            self._pause_reading(_PAUSED_FOR_WAITING)
            self.deadline = _NEVER  # the lookup has its own timeout

    def _respond(self, request: _Request, response: Response) -> None:
        keep_alive = request.keep_alive and not self._hub.draining
        self._count_status(response.status)
        self._emit(
            responses.render(
                response,
                head_only=request.method == b"HEAD",
                keep_alive=keep_alive,
                http10=request.http10,
            )
        )
        if not keep_alive:
            self._stop_after_output()

    async def _answer_when_ready(
        self, request: _Request, pending: Coroutine[Any, Any, Response]
    ) -> None:
        try:
            response = await pending
        except Exception:
            logger.exception("unexpected error while answering a request")
            response = responses.INTERNAL_ERROR
        self._waiting = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._out = []
        self._respond(request, response)
        # Answer what was pipelined behind it, until another request has to wait.
        self._continue()
        self._flush()

    def _reject(self, response: Response) -> None:
        """Answer a request that cannot be read to its end, then close.

        The client may still be sending it. Closing a socket with unread input makes the kernel
        reset the connection, which can destroy the response before the client reads it, so
        the edge half-closes and discards input for a moment first.
        """
        exchange = self._proxied
        if exchange is not None:
            if exchange is self._proxy and exchange.sent_to_client:
                # Its answer has begun: the client must see it cut short.
                self._drop_exchange(exchange)
                self.abort()
                return
            self._drop_exchange(exchange)
        self._hub.counters.bad_requests += 1
        self._count_status(response.status)
        self._linger = True
        self._finish(responses.render_error_and_close(response))

    def _finish(self, last: bytes) -> None:
        """Send `last` after anything still owed, then close; answer nothing more."""
        self._done = True
        if self._waiting is not None or self._queue or self._proxy is not None:
            self._queue.append(last)
            return
        if last:
            self._emit(last)
        self._stop_after_output()

    def _emit(self, data: bytes) -> None:
        if self._out is not None:
            self._out.append(data)
        else:
            self._flush_now(data)

    def _stop_after_output(self) -> None:
        self._done = True
        self._queue.clear()
        self._close_after_output = True
        if self._out is None:
            self._flush()

    def _flush(self) -> None:
        out = self._out
        self._out = None
        if out:
            self._flush_now(out[0] if len(out) == 1 else b"".join(out))
        elif self._tls is not None or self._close_after_output:
            self._flush_now(b"")

    def _flush_now(self, plaintext: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        closing = self._close_after_output
        tls = self._tls
        if tls is not None:
            if plaintext:
                tls.send(plaintext)
            if closing and tls.established:
                tls.close_notify()
            wire = tls.take_output()
        else:
            wire = plaintext
        if wire:
            transport.write(wire)
        if closing:
            self._close_after_output = False
            if self._linger and transport.can_write_eof():
                transport.write_eof()
                self._lingering = True
                self.deadline = self._hub.now + _LINGER_SECONDS
            else:
                self.deadline = _NEVER
                transport.close()

    # Flow control and deadlines ------------------------------------------------------------

    def _pause_reading(self, reason: int) -> None:
        if not self._read_paused and self._transport is not None:
            self._transport.pause_reading()
        self._read_paused |= reason

    def _resume_reading(self, reason: int) -> None:
        if not self._read_paused & reason:
            return
        self._read_paused &= ~reason
        transport = self._transport
        if not self._read_paused and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _set_idle_deadline(self) -> None:
        if self._waiting is not None or self._write_paused or self._done:
            return
        if self._proxy is not None and not self._in_message:
            self.deadline = _NEVER  # the relayed exchange keeps its own time
            return
        limits = self._hub.limits
        # A request read while an earlier one waited gets its full time from now.
        if self._in_message:
            self.deadline = self._hub.now + limits.request_timeout
            return
        self.deadline = self._hub.now + limits.idle_timeout
        if self.idle_since == _NEVER:
            self.idle_since = self._hub.now

    def _count_status(self, status: int) -> None:
        self._hub.counters.responses_by_status[status] += 1
