"""Proxy mode: relay a request to the platform's own tracker and stream its answer back.

The client connection (edge/http.py) reads and checks the request with httptools; once its
head is complete and the edge decides to relay it (`ProxyRoutes.decide`), an `Exchange`
carries it to an origin and the response back:

- the request head is rebuilt, never copied: hop-by-hop fields (RFC 9110 section 7.6.1) and
  the fields named in `Connection` are left out, the client's `Forwarded`/`X-Forwarded-*` are
  replaced by the edge's own (kept and extended only from a `trusted_proxies` peer), `Via` is
  added, `Host` is kept, and the body is framed by the edge from what it parsed itself
  (`Content-Length`, or chunks re-encoded), so the origin can never read a different request
  boundary than the edge did. Requests whose length is ambiguous never get this far: httptools
  refuses them while reading the head (see tests/test_proxy_smuggling.py);
- bodies stream both ways with flow control: an origin that stops reading pauses the client's
  upload, a client that stops reading pauses the origin's download;
- timeouts: connect (in `Origin.connect`), time to the first byte of the response after the
  request was sent, and idle time between bytes of the response; 504 when the response had not
  begun, else the client connection is cut (a truncated response must not look complete);
- a refused or reset connection before the response begins gives 502; a request that is safe
  to repeat (GET or HEAD without a body, nothing sent to the client yet) is retried once on
  another origin first.

Responses leave the edge as HTTP/1.1: with the origin's `Content-Length`, or chunked when the
origin's length was chunked or unknown (HTTP/1.0 clients get a close-delimited body then).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httptools

from linkcert.edge import responses
from linkcert.edge.counters import EdgeCounters
from linkcert.edge.responses import Response
from linkcert.edge.routes import CHALLENGE_PREFIX, CLICK_PREFIX, HEALTH_PATH, OPEN_PREFIX, Router
from linkcert.edge.upstream import (
    Origin,
    OriginBusy,
    OriginRegistry,
    OriginSpec,
    PoolSettings,
    UpstreamConnection,
    Upstreams,
)

logger = logging.getLogger(__name__)

EdgeMode = Literal["tracking", "proxy", "both"]

VIA = b"1.1 linkcert"

# RFC 9110 section 7.6.1, with the fields older agents still send as connection options.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)
# What the edge sets itself on the way to the origin, from its own reading of the request.
_FORWARDING = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip"}
)
_REQUEST_REBUILT = HOP_BY_HOP | {b"content-length", b"expect", b"host"}
_RESPONSE_REBUILT = HOP_BY_HOP | {b"content-length"}

_NO_BODY = 0
_LENGTH = 1
_CHUNKED = 2

# Request body bytes held while the origin connection is being made, before reading pauses.
_BUFFER_BEFORE_PAUSE = 256 * 1024
_SAFE_TO_RETRY = (b"GET", b"HEAD")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """How the edge relays. Times in seconds."""

    mode: EdgeMode = "tracking"
    upstreams: tuple[OriginSpec, ...] = ()
    pool: PoolSettings = field(default_factory=PoolSettings)
    first_byte_timeout: float = 30.0
    idle_timeout: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_request_line_bytes: int = 8 * 1024
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose Forwarded/X-Forwarded-* are kept


class ProxyClient(Protocol):
    """The client connection an exchange answers on (edge/http.py's HttpConnection)."""

    @property
    def draining(self) -> bool: ...
    def proxy_send(self, data: bytes) -> None: ...
    def proxy_pause_upload(self) -> None: ...
    def proxy_resume_upload(self) -> None: ...
    def proxy_done(self, *, close: bool) -> None: ...
    def proxy_failed(self, response: Response, *, close: bool, http10: bool) -> None: ...
    def proxy_abort(self) -> None: ...


AccountUpstreams = Callable[[str], tuple[OriginSpec, ...] | None]


class ProxyRoutes:
    """Which requests are relayed, and to which origins. One per edge process."""

    def __init__(
        self,
        settings: ProxySettings,
        counters: EdgeCounters,
        *,
        serves: Callable[[str], bool],
        account_upstreams: AccountUpstreams | None = None,
    ) -> None:
        if settings.mode != "tracking" and not settings.upstreams:
            raise ValueError(f"edge mode {settings.mode!r} needs at least one upstream origin")
        self.settings = settings
        self.mode = settings.mode
        self.counters = counters
        self.serves = serves
        self.account_upstreams = account_upstreams
        self.registry = OriginRegistry(settings.pool)
        self._trusted = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in settings.trusted_proxies
        )
        # Built now, so that an unreadable CA bundle stops the edge at start, not at a click.
        self._default = self.registry.upstreams(settings.upstreams) if settings.upstreams else None

    def relays(self, path: bytes, host: str, router: Router) -> bool:
        """Whether a request for `path` goes to the origin: everything but ACME challenges
        and the health check, and in `both` mode, but linkcert's own valid links."""
        if path.startswith(CHALLENGE_PREFIX) or path == HEALTH_PATH:
            return False
        if self.mode == "both" and (path.startswith(CLICK_PREFIX) or path.startswith(OPEN_PREFIX)):
            return not router.has_valid_token(host, path[3:])
        return True

    def upstreams_for(self, host: str) -> Upstreams:
        specs = None
        if self.account_upstreams is not None:
            specs = self.account_upstreams(host)
        if specs:
            return self.registry.upstreams(specs)
        assert self._default is not None  # no mode but tracking goes without upstreams
        return self._default

    def trusted(self, peer: str | None) -> bool:
        if not self._trusted or peer is None:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def close(self) -> None:
        self.registry.close()


def peer_host(transport: asyncio.BaseTransport | None) -> str | None:
    if transport is None:
        return None
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


@dataclass(slots=True)
class RequestHead:
    """What the edge sends the origin before the body, and how the body is framed."""

    head: bytes
    framing: int
    content_length: int
    expect_continue: bool


def build_request_head(
    *,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    host: bytes,
    peer: str | None,
    secure: bool,
    trusted: bool,
) -> RequestHead:
    """The request as the origin gets it. `headers` are as httptools read them (validated);
    `host` is the Host to send (the client's own, or the authority of an absolute-form target).
    """
    dropped = set(_REQUEST_REBUILT)
    if not trusted:
        dropped |= _FORWARDING
    framing = _NO_BODY
    content_length = 0
    expect_continue = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"connection":
            dropped.update(token.strip().lower() for token in value.split(b","))
        elif lowered == b"transfer-encoding":
            framing = _CHUNKED  # httptools accepts only a final "chunked" in a request
        elif lowered == b"content-length":
            if framing == _NO_BODY:
                framing = _LENGTH
            content_length = int(value)
        elif lowered == b"expect":
            expect_continue = value.strip().lower() == b"100-continue"
    lines = [method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    forwarded_for: list[bytes] = []
    forwarded: list[bytes] = []
    kept_proto = kept_host = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in dropped:
            continue
        # Some servers read "X_Forwarded_For" as "X-Forwarded-For": never pass those on either.
        if b"_" in lowered and lowered.replace(b"_", b"-") in _FORWARDING:
            continue
        if lowered == b"x-forwarded-for":
            forwarded_for.append(value.strip())  # trusted: combined below
            continue
        if lowered == b"forwarded":
            forwarded.append(value.strip())
            continue
        if lowered == b"x-forwarded-proto":
            kept_proto = True
        elif lowered == b"x-forwarded-host":
            kept_host = True
        lines += (name, b": ", value, b"\r\n")
    peer_bytes = (peer or "unknown").encode("ascii", "replace")
    node = b'"[' + peer_bytes + b']"' if b":" in peer_bytes else peer_bytes
    proto = b"https" if secure else b"http"
    quoted_host = b'"' + host.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    forwarded.append(b"for=" + node + b";host=" + quoted_host + b";proto=" + proto)
    lines += (b"Forwarded: ", b", ".join(forwarded), b"\r\n")
    forwarded_for.append(peer_bytes)
    lines += (b"X-Forwarded-For: ", b", ".join(forwarded_for), b"\r\n")
    if not kept_proto:
        lines += (b"X-Forwarded-Proto: ", proto, b"\r\n")
    if not kept_host:
        lines += (b"X-Forwarded-Host: ", host, b"\r\n")
    lines += (b"Via: ", VIA, b"\r\n")
    if framing == _LENGTH:
        lines.append(b"Content-Length: %d\r\n" % content_length)
    elif framing == _CHUNKED:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    lines.append(b"\r\n")
    return RequestHead(b"".join(lines), framing, content_length, expect_continue)


class _HeadOnly(Exception):
    """Stops the response parser after the head of an answer to HEAD."""


_BAD_GATEWAY_REASONS = frozenset({"refused", "reset", "bad_response", "tls"})


class Exchange:
    """One request relayed to an origin (retried once on another when that is safe)."""

    __slots__ = (
        "_attempt_started",
        "_body_done",
        "_buffered",
        "_buffered_bytes",
        "_client",
        "_client_http10",
        "_client_keep_alive",
        "_client_paused",
        "_close_client",
        "_complete_pending",
        "_connection",
        "_deadline",
        "_delimited_by_close",
        "_finished",
        "_head",
        "_interim",
        "_loop",
        "_method",
        "_origin",
        "_out",
        "_parser",
        "_phase",
        "_rechunk",
        "_response_headers",
        "_retried",
        "_reused",
        "_routes",
        "_sent_to_client",
        "_status",
        "_task",
        "_timer",
        "_upload_paused",
        "_upstream_keep_alive",
        "_upstreams",
        "retryable",
        "started",
    )

    def __init__(
        self,
        routes: ProxyRoutes,
        client: ProxyClient,
        upstreams: Upstreams,
        head: RequestHead,
        *,
        method: bytes,
        client_http10: bool,
        client_keep_alive: bool,
    ) -> None:
        self._routes = routes
        self._client = client
        self._upstreams = upstreams
        self._head = head
        self._method = method
        self._client_http10 = client_http10
        self._client_keep_alive = client_keep_alive
        bodiless = head.framing == _NO_BODY or (
            head.framing == _LENGTH and head.content_length == 0
        )
        self.retryable = method in _SAFE_TO_RETRY and bodiless
        self.started = False
        self._loop = asyncio.get_running_loop()
        self._buffered: list[bytes] = []
        self._buffered_bytes = 0
        self._body_done = bodiless
        self._client_paused = False
        self._upload_paused = False
        self._connection: UpstreamConnection | None = None
        self._origin: Origin = upstreams.origins[0]
        self._reused = False
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._phase = 0  # 0 connecting, 1 waiting for the head, 2 reading the body
        self._finished = False
        self._retried = False
        self._sent_to_client = False
        self._close_client = False
        self._complete_pending = False
        self._parser: httptools.HttpResponseParser | None = None
        self._response_headers: list[tuple[bytes, bytes]] = []
        self._interim = False
        self._rechunk = False
        self._delimited_by_close = False
        self._out: list[bytes] | None = None
        self._attempt_started = 0.0
        self._upstream_keep_alive = False
        self._status = 0

    @property
    def sent_to_client(self) -> bool:
        """Whether the response has begun reaching the client (it can no longer be replaced
        by an error page)."""
        return self._sent_to_client

    # The client's side ---------------------------------------------------------------------

    def start(self) -> None:
        """Begin relaying (the client connection calls this when the request is its turn)."""
        self.started = True
        if self._head.expect_continue and not self._client_http10 and not self._body_done:
            self._client.proxy_send(_CONTINUE)
        self._try(self._upstreams.pick(time.monotonic()))

    def feed(self, chunk: bytes) -> None:
        """A piece of the request body as the client sent it (decoded from chunks)."""
        if self._finished and not self._sent_to_client:
            return
        if self._head.framing == _CHUNKED:
            chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        self._send_body(chunk)

    def end_body(self) -> None:
        self._body_done = True
        if self._head.framing == _CHUNKED:
            self._send_body(b"0\r\n\r\n")

    def _send_body(self, data: bytes) -> None:
        if self._finished:
            return
        connection = self._connection
        if connection is not None and self._phase:
            connection.write(data)
            if self._phase == 1:
                self._deadline = self._loop.time() + self._routes.settings.first_byte_timeout
            return
        self._buffered.append(data)
        self._buffered_bytes += len(data)
        if self._buffered_bytes > _BUFFER_BEFORE_PAUSE and not self._upload_paused:
            self._upload_paused = True
            self._client.proxy_pause_upload()

    def client_paused(self) -> None:
        self._client_paused = True
        if self._connection is not None:
            self._connection.pause_reading()

    def client_resumed(self) -> None:
        self._client_paused = False
        if self._connection is not None:
            self._connection.resume_reading()

    def client_gone(self) -> None:
        """The client went away: close the origin connection unless its response was whole."""
        if self._finished:
            return
        self._finished = True
        self._stop_timer()
        if self._task is not None:
            self._task.cancel()
        connection = self._connection
        self._connection = None
        if connection is not None:
            connection.close()

    # Reaching an origin --------------------------------------------------------------------

    def _try(self, origin: Origin | None) -> None:
        assert origin is not None
        self._origin = origin
        self._reused = False
        origin.stats.requests += 1
        self._attempt_started = self._loop.time()
        self._phase = 0
        connection = origin.take_idle()
        if connection is not None:
            connection.lease(self)
            self._attach(connection)
        else:
            self._task = self._loop.create_task(self._connect(origin))

    async def _connect(self, origin: Origin) -> None:
        try:
            connection = await origin.connect(self)
        except asyncio.CancelledError:
            raise
        except OriginBusy:
            self._task = None
            self._failed("busy")
            return
        except TimeoutError:
            self._task = None
            self._failed("connect_timeout")
            return
        except ssl.SSLError as exc:
            self._task = None
            logger.warning(
                "TLS to origin %s failed: %s", origin.label, exc, extra={"origin": origin.label}
            )
            self._failed("tls")
            return
        except OSError:
            self._task = None
            self._failed("refused")
            return
        self._task = None
        if self._finished:
            origin.release(connection, reusable=True)
            return
        self._attach(connection)

    def _attach(self, connection: UpstreamConnection) -> None:
        self._connection = connection
        self._reused = connection.reused
        self._parser = httptools.HttpResponseParser(self)
        self._response_headers = []
        self._phase = 1
        buffered = self._buffered
        if buffered:
            connection.write(self._head.head + b"".join(buffered))
            self._buffered = []
            self._buffered_bytes = 0
        else:
            connection.write(self._head.head)
        if self._upload_paused:
            self._upload_paused = False
            self._client.proxy_resume_upload()
        if self._client_paused:
            connection.pause_reading()
        self._arm(self._routes.settings.first_byte_timeout)

    def _failed(self, reason: str) -> None:
        """The attempt failed before any of the response reached the client."""
        origin = self._origin
        stale = self._reused and reason == "reset"
        connection = self._connection
        if connection is not None:
            self._connection = None
            connection.close()
        if self._finished:
            return
        if reason == "busy":
            # The pool's bound was reached: this edge's limit, not a sign the origin is down.
            origin.stats.failures[reason] += 1
        elif stale:
            # A kept-alive connection the origin closed as it was reused: counted, but no sign
            # the origin is down either.
            origin.stats.failures["stale_connection"] += 1
        else:
            origin.failed(reason)
        if self.retryable and not self._retried and not self._sent_to_client:
            # A pooled connection the origin had just closed is not the origin's fault: try
            # the same list again; otherwise another origin.
            following = self._upstreams.pick(time.monotonic(), avoid=None if stale else origin)
            if following is not None:
                self._retried = True
                origin.stats.retries += 1
                self._stop_timer()
                self._try(following)
                return
        self._finish_with_error(reason)

    def _finish_with_error(self, reason: str) -> None:
        self._finished = True
        self._stop_timer()
        timeout = reason in ("connect_timeout", "timeout", "busy")
        response = responses.GATEWAY_TIMEOUT if timeout else responses.BAD_GATEWAY
        self._origin.stats.responses_by_class["edge_" + str(response.status)] += 1
        if self._sent_to_client:
            self._client.proxy_abort()
        else:
            self._client.proxy_failed(
                response,
                close=not self._body_done or not self._client_keep_alive,
                http10=self._client_http10,
            )

    # The origin's side ---------------------------------------------------------------------

    def upstream_data(self, data: bytes) -> None:
        if self._finished or self._parser is None:
            return
        if self._phase == 2:
            self._deadline = self._loop.time() + self._routes.settings.idle_timeout
        self._out = []
        sent_before = self._sent_to_client
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadOnly):
                self._complete_pending = True
            else:
                self._out = None
                self._sent_to_client = sent_before  # a head read in this piece was not sent
                self._broken(exc)
                return
        except httptools.HttpParserError as exc:
            self._out = None
            self._sent_to_client = sent_before
            self._broken(exc)
            return
        out = self._out
        self._out = None
        if out:
            self._client.proxy_send(out[0] if len(out) == 1 else b"".join(out))
        if self._complete_pending:
            self._complete()

    def _broken(self, exc: Exception) -> None:
        logger.warning(
            "origin %s sent a response that cannot be read: %s",
            self._origin.label,
            exc,
            extra={"origin": self._origin.label},
        )
        if self._sent_to_client:
            self._origin.failed("bad_response")
            self._abort_midway()
        else:
            self._failed("bad_response")

    def upstream_eof(self) -> None:
        pass  # connection_lost follows: a close-delimited body ends there

    def upstream_lost(self, exc: Exception | None) -> None:
        self._connection = None
        if self._finished:
            return
        if self._sent_to_client:
            if self._delimited_by_close and exc is None:
                self._complete()
            else:
                self._origin.failed("reset")
                self._abort_midway()
        else:
            self._failed("reset")

    def upstream_paused(self) -> None:
        if not self._upload_paused:
            self._upload_paused = True
            self._client.proxy_pause_upload()

    def upstream_resumed(self) -> None:
        if self._upload_paused and not self._buffered_bytes:
            self._upload_paused = False
            self._client.proxy_resume_upload()

    # Response parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._response_headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._phase == 1:
            self._response_headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise httptools.HttpParserError("the origin switched protocols unasked")
            self._interim = True  # 100 Continue, 103 Early Hints: not passed on
            return
        origin = self._origin
        self._status = status
        origin.stats.observe_latency(self._loop.time() - self._attempt_started)
        origin.stats.responses_by_class[f"{status // 100}xx"] += 1
        self._phase = 2
        self._deadline = self._loop.time() + self._routes.settings.idle_timeout
        head = self._response_head(status)
        self._sent_to_client = True
        assert self._out is not None
        self._out.append(head)
        self._routes.counters.responses_by_status[status] += 1
        if self._method == b"HEAD":
            raise _HeadOnly

    def on_body(self, body: bytes) -> None:
        out = self._out
        assert out is not None
        if self._rechunk:
            out.append(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            out.append(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        # Read now: llhttp resets its flags for the next message once this returns.
        assert self._parser is not None
        self._upstream_keep_alive = self._parser.should_keep_alive()
        self._complete_pending = True

    # Response head and completion ------------------------------------------------------------

    def _response_head(self, status: int) -> bytes:
        parser = self._parser
        assert parser is not None
        headers = self._response_headers
        dropped: set[bytes] = set(_RESPONSE_REBUILT)
        has_length = chunked = False
        transfer_coded = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"connection":
                dropped.update(token.strip().lower() for token in value.split(b","))
            elif lowered == b"content-length":
                has_length = True
            elif lowered == b"transfer-encoding":
                transfer_coded = True
                chunked = value.strip().lower() == b"chunked"
        if transfer_coded and not chunked:
            raise httptools.HttpParserError("a transfer coding other than chunked")
        bodiless = self._method == b"HEAD" or status in (204, 304)
        close = not self._client_keep_alive or not self._body_done or self._client.draining
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _reason(status))]
        has_date = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in dropped:
                if lowered == b"content-length" and (
                    self._method == b"HEAD" or (status == 304 and not transfer_coded)
                ):
                    lines += (name, b": ", value, b"\r\n")
                continue
            if lowered == b"date":
                has_date = True
            lines += (name, b": ", value, b"\r\n")
        if not has_date:
            lines.append(responses.date_line())
        lines += (b"Via: ", VIA, b"\r\n")
        if not bodiless:
            if has_length and not transfer_coded:
                for name, value in headers:
                    if name.lower() == b"content-length":
                        lines += (b"Content-Length: ", value, b"\r\n")
                        break
            elif self._client_http10:
                self._delimited_by_close = not chunked
                close = True
            else:
                self._rechunk = True
                self._delimited_by_close = not chunked
                lines.append(b"Transfer-Encoding: chunked\r\n")
        if close:
            lines.append(b"Connection: close\r\n")
        elif self._client_http10:
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(b"\r\n")
        self._close_client = close
        return b"".join(lines)

    def _complete(self) -> None:
        """The whole response reached the client's connection."""
        if self._finished:
            return
        self._finished = True
        self._complete_pending = False
        self._stop_timer()
        if self._rechunk:
            self._client.proxy_send(b"0\r\n\r\n")
        connection = self._connection
        self._connection = None
        origin = self._origin
        if connection is not None:
            reusable = (
                self._upstream_keep_alive
                and self._body_done
                and not self._buffered
                and self._method != b"HEAD"
                and not self._delimited_by_close
            )
            origin.release(connection, reusable=reusable)
        if self._status >= 500:
            origin.failed("5xx")
        else:
            origin.succeeded()
        self._client.proxy_done(close=self._close_client)

    def _abort_midway(self) -> None:
        """The response broke after it began: the client must see it incomplete, so its
        connection is cut."""
        self._finished = True
        self._stop_timer()
        connection = self._connection
        self._connection = None
        if connection is not None:
            connection.close()
        self._client.proxy_abort()

    # Timeouts -----------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._deadline = self._loop.time() + seconds
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._finished:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            return
        if self._sent_to_client:
            self._origin.failed("timeout")
            self._abort_midway()
        else:
            self._failed("timeout")


def _reason(status: int) -> bytes:
    return responses.REASONS.get(status, b"")


def mapping_upstreams(table: Mapping[str, tuple[OriginSpec, ...]]) -> AccountUpstreams:
    return table.get
