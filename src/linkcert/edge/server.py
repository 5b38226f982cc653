"""The edge server: an HTTP and an HTTPS listener sharing one router and one click recorder."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from linkcert.edge.certs import CertificateCache
from linkcert.edge.challenges import ChallengeBook
from linkcert.edge.counters import EdgeCounters
from linkcert.edge.http import CertificateLoader, ConnectionHub, HttpConnection, Limits
from linkcert.edge.listen import ListenSpec, open_listener
from linkcert.edge.proxy import AccountUpstreams, ProxyRoutes, ProxySettings
from linkcert.edge.routes import ChallengeSource, Router
from linkcert.edge.tls import SniSelector
from linkcert.tracking import ClickRecorder, ClickSink, TrackingKeys
from linkcert.tracking.machines import AgentMatcher, MachinePolicy
from linkcert.tracking.repeats import RepeatLimiter
from linkcert.tracking.spool import EventSpool

logger = logging.getLogger(__name__)

_TURNS_FOR_ACCEPTED_CONNECTIONS = 5


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Where the edge listens and the limits it enforces. Times are in seconds."""

    http: ListenSpec | None = None
    https: ListenSpec | None = None
    reuse_port: bool = False  # for `host:port` specs: let several processes share the port
    backlog: int = 1024
    # TLS session tickets (resumption). Off until the edge processes share ticket keys: see
    # tlsconfig.configure.
    tls_session_tickets: bool = False
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024
    idle_timeout: float = 60.0
    request_timeout: float = 10.0
    # A new connection's first byte (a request on HTTP, the ClientHello on HTTPS) must come
    # within first_byte_timeout; the TLS handshake then has handshake_timeout to complete.
    first_byte_timeout: float = 5.0
    handshake_timeout: float = 10.0
    # A handshake for a name whose certificate is not in memory (see CertificateCache.put_index)
    # waits this long for `certificate_loader` to load it, then gets an alert.
    certificate_wait: float = 5.0
    # Connections held per process and per client address (IPv4 address or IPv6 /64); over
    # either, a new connection replaces the oldest idle one, or is refused when none is idle.
    # 0: no bound.
    max_connections: int = 0
    max_connections_per_address: int = 0
    challenge_timeout: float = 5.0
    shutdown_timeout: float = 10.0
    sweep_interval: float = 1.0  # how often deadlines are checked: the timeouts' resolution
    click_batch_size: int = 500
    # Recordings of one link from one client address within click_repeat_window seconds; past
    # it the link is still answered, not recorded. 0: no limit.
    click_repeat_limit: int = 0
    click_repeat_window: float = 600.0
    click_batch_delay: float = 1.0
    max_pending_clicks: int = 100_000
    click_retry_initial: float = 0.5
    click_retry_max: float = 30.0
    click_close_timeout: float = 30.0
    # Click and open events: off answers links without recording anything.
    record_events: bool = True
    event_machine_seconds: float = 5.0  # a click this soon after minting is marked machine
    # Proxy mode: relay requests to the platform's own tracker (edge/proxy.py). None or mode
    # "tracking": linkcert answers only its own links, challenges and /healthz.
    proxy: ProxySettings | None = None


class Edge:
    """Serves tracked links and ACME challenges for every customer domain.

    It knows no database: certificates come from `certificates` (filled by the integrator),
    challenge answers from `challenge_lookup` (a ChallengeBook the integrator feeds, or a
    function called for each token), and clicks go to `click_sink` in batches.
    """

    def __init__(
        self,
        *,
        tracking_key: TrackingKeys | bytes,
        certificates: CertificateCache,
        challenge_lookup: ChallengeSource,
        click_sink: ClickSink,
        settings: EdgeSettings | None = None,
        serves: Callable[[str], bool] | None = None,
        account_upstreams: AccountUpstreams | None = None,
        certificate_loader: CertificateLoader | None = None,
        spool: EventSpool | None = None,
    ) -> None:
        """`certificate_loader(name)` loads a served name's certificate into `certificates`
        when a handshake wants one that is only indexed there (None: such handshakes fail).
        `serves(name)` says whether a host name is one linkcert serves (by default the
        router's: a proven, live name in `certificates`); only those are ever relayed in proxy
        mode.
        `account_upstreams(name)` gives a name's own origins (its account's), or None for the
        global list.
        `spool` (opened) takes the click and open events instead of `click_sink`: each is
        appended before its answer, for the event writer to insert (linkcert.events.writer)."""
        self.settings = settings = settings or EdgeSettings()
        if settings.http is None and settings.https is None:
            raise ValueError("EdgeSettings needs an http or an https listen address (or both)")
        self.certificates = certificates
        self.counters = EdgeCounters()
        if isinstance(challenge_lookup, ChallengeBook):
            challenge_lookup.counters = self.counters
        self.clicks = ClickRecorder(
            click_sink,
            max_batch=settings.click_batch_size,
            max_delay=settings.click_batch_delay,
            max_pending=settings.max_pending_clicks,
            retry_initial=settings.click_retry_initial,
            retry_max=settings.click_retry_max,
            close_timeout=settings.click_close_timeout,
        )
        router = Router(
            tracking_key=tracking_key,
            recorder=self.clicks,
            challenge_lookup=challenge_lookup,
            challenge_timeout=settings.challenge_timeout,
            counters=self.counters,
            link_epoch=certificates.link_epoch,
            repeats=(
                RepeatLimiter(settings.click_repeat_limit, settings.click_repeat_window)
                if settings.click_repeat_limit
                else None
            ),
            machines=MachinePolicy(settings.event_machine_seconds, AgentMatcher()),
            record=settings.record_events,
            spool=spool,
        )
        self.spool = spool
        self.proxy: ProxyRoutes | None = None
        proxy_settings = settings.proxy
        if proxy_settings is not None and proxy_settings.mode != "tracking":
            self.proxy = ProxyRoutes(
                proxy_settings,
                self.counters,
                # The edge's one decision: the names whose links it answers are the names it
                # relays (proven, live; see Router.serves).
                serves=serves or router.serves,
                account_upstreams=account_upstreams,
            )
        limits = Limits(
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_body_bytes,
            idle_timeout=settings.idle_timeout,
            request_timeout=settings.request_timeout,
            handshake_timeout=settings.handshake_timeout,
            max_target_bytes=(
                proxy_settings.max_request_line_bytes
                if self.proxy is not None and proxy_settings is not None
                else settings.max_header_bytes
            ),
            first_byte_timeout=settings.first_byte_timeout,
            max_connections=settings.max_connections,
            max_connections_per_address=settings.max_connections_per_address,
            certificate_wait=settings.certificate_wait,
        )
        self._sni = SniSelector(
            certificates, self.counters, session_tickets=settings.tls_session_tickets
        )
        self._hub = ConnectionHub(
            router,
            self.counters,
            limits,
            self._sni.context,
            self.proxy,
            certificate_loader=certificate_loader,
        )
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self.http_port: int | None = None
        self.https_port: int | None = None
        self._state = "new"

    def use_ticket_keys(self, keys: bytes | None) -> bool:
        """Session tickets sealed with the keys every edge shares (see linkcert.ticketkeys);
        None for none. Returns whether shared keys are in use."""
        return self._sni.use_ticket_keys(keys)

    @property
    def open_connections(self) -> int:
        return len(self._hub.connections)

    async def start(self) -> None:
        """Bind the listeners and start serving. `http_port`/`https_port` then hold the ports."""
        if self._state != "new":
            raise RuntimeError(f"this Edge is {self._state}; create a new one to start again")
        self._state = "starting"
        loop = asyncio.get_running_loop()
        settings = self.settings
        self._hub.now = loop.time()
        try:
            for spec, secure in ((settings.http, False), (settings.https, True)):
                if spec is None:
                    continue
                sock = open_listener(spec, reuse_port=settings.reuse_port, backlog=settings.backlog)
                try:
                    server = await loop.create_server(
                        functools.partial(HttpConnection, self._hub, secure=secure),
                        sock=sock,
                        backlog=settings.backlog,
                    )
                except BaseException:
                    sock.close()
                    raise
                self._servers.append(server)
                port = _port_of(sock)
                if secure:
                    self.https_port = port
                else:
                    self.http_port = port
        except BaseException:
            for server in self._servers:
                server.close()
            self._state = "closed"
            raise
        self._sweeper = loop.create_task(self._sweep(), name="edge-sweeper")
        self._state = "serving"
        logger.info(
            "edge serving",
            extra={"http_port": self.http_port, "https_port": self.https_port},
        )

    async def aclose(self) -> None:
        """Stop gracefully: stop accepting, let requests in progress finish (up to
        `shutdown_timeout`), close idle connections, then deliver every recorded click."""
        if self._state in ("closing", "closed"):
            return
        self._state = "closing"
        hub = self._hub
        for server in self._servers:
            server.close()
        hub.draining = True
        # A connection accepted just before the close reaches connection_made a turn or two of
        # the loop later (asyncio's own loop takes a task and a few turns). Let those in first,
        # so that they are drained like the others instead of being reset at exit.
        for _ in range(_TURNS_FOR_ACCEPTED_CONNECTIONS):
            await asyncio.sleep(0)
        for connection in list(hub.connections):
            connection.begin_drain()
        if hub.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.shutdown_timeout):
                    await hub.all_closed.wait()
        for connection in list(hub.connections):
            connection.abort()
        if self.proxy is not None:
            self.proxy.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        await self.clicks.aclose()
        if self.spool is not None:
            self.spool.close()
        self._state = "closed"

    async def __aenter__(self) -> Edge:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        hub = self._hub
        interval = self.settings.sweep_interval
        while True:
            await asyncio.sleep(interval)
            now = hub.now = loop.time()
            for connection in list(hub.connections):
                connection.check_deadline(now)


def _port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port
