"""One linkcert process: any of the worker, the edge and the API, sharing one store.

`linkcert serve` runs all three; fleet mode runs them as separate processes on PostgreSQL.
Start-up checks every secret and setting first, so a bad one stops the process at once with
a message naming it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import logging
import socket
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import uvicorn

from linkcert.config import ConfigError, Settings
from linkcert.dcv import DcvSettings, ZoneUpdater
from linkcert.edge import CertificateCache, Edge, EdgeSettings, ListenSpec, ProxySettings
from linkcert.edge.fdlimit import connection_budget, raise_open_file_limit
from linkcert.edge.upstream import PoolSettings, parse_origin
from linkcert.events.broker import run_broker
from linkcert.events.dispatch import run_dispatch
from linkcert.events.journal import Journal, report_lost
from linkcert.events.store import run_retention
from linkcert.events.writer import WriterChild
from linkcert.hostport import parse_host_port
from linkcert.keys import DecryptionError, MasterKeyError, MasterKeys
from linkcert.keystore import check_master_key
from linkcert.links import tracking_keys
from linkcert.metrics import MetricsListener, serve_metrics, track_edge, track_origins
from linkcert.names import platform_names
from linkcert.notify import Notifier, run_deliveries, watch_expiry
from linkcert.service.acme_account import CaAccounts
from linkcert.service.dnscheck import make_dns_check
from linkcert.service.feeds import StoreFeeds
from linkcert.service.roles import Roles
from linkcert.store import Store, StoreError
from linkcert.store.db import sqlite_path
from linkcert.ticketkeys import follow_ticket_keys, keep_ticket_keys
from linkcert.tracking import TrackingKeys
from linkcert.tracking.spool import EventSpool
from linkcert.worker.cachoice import CaHealth
from linkcert.worker.issuance import Issuer
from linkcert.worker.lifecycle import LifecyclePolicy, Worker
from linkcert.worker.retention import (
    keep_certificates_pruned,
    keep_clicks_pruned,
    keep_history_pruned,
)

log = logging.getLogger("linkcert")


class SoleWorker:
    """The lock that makes a worker on a SQLite file the only one, and so its identity stable.

    SQLite has one worker at a time (fleet mode needs PostgreSQL). The worker holds an
    exclusive lock on `<database>.worker-lock` for as long as it runs; the system drops it when
    the process dies, however it dies. Holding the lock proves that leases under this identity
    are an earlier run's, so the new run takes them back at once instead of waiting them out.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".worker-lock")
        self.identity = f"{socket.gethostname()}:sqlite-worker"
        self._handle: IO[bytes] | None = None

    @classmethod
    def for_store(cls, store: Store) -> SoleWorker | None:
        """The lock for a store in a SQLite file; None for PostgreSQL or an in-memory store."""
        database = sqlite_path(store.url)
        if database is None or database.startswith("file:"):
            return None
        return cls(Path(database).resolve())

    def acquire(self) -> None:
        try:
            handle = self.path.open("ab")
        except OSError as exc:
            raise ConfigError(f"cannot open the worker lock {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                f"another linkcert process runs the worker on this database ({self.path.parent}"
                f"/{self.path.name.removesuffix('.worker-lock')}); run one `linkcert serve` per "
                "SQLite file, or move to PostgreSQL for several workers (docs/deploy.md)"
            ) from None
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None


def master_keys(settings: Settings) -> MasterKeys:
    try:
        return MasterKeys.from_settings(settings)
    except MasterKeyError as exc:
        raise ConfigError(str(exc)) from None


def tracking_key(settings: Settings) -> TrackingKeys:
    """The tracking keys in force; ConfigError says which setting to fix."""
    return tracking_keys(settings)


def prepare_store(store: Store, keys: MasterKeys, *, create: bool = True) -> None:
    """Check that the database is migrated (on SQLite, with `create`, create or migrate it) and
    that the master key opens the stored keys; ConfigError says what to do otherwise.
    Blocking: run it in a thread."""
    try:
        if create and store.dialect == "sqlite":
            store.migrate()
        else:
            store.check_ready()
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    try:
        check_master_key(store, keys)
    except DecryptionError as exc:
        raise ConfigError(
            f"the master key does not open the keys in the database ({exc}); "
            "set LINKCERT_MASTER_KEY to the key they were stored with"
        ) from None


# How long a worker waits for the edge in its process to read a new order's challenges.
CHALLENGE_REFRESH_WAIT = 5.0


def zone_updater(settings: Settings) -> ZoneUpdater | None:
    """Where DNS-01 answers are written, when a delegation zone (`dcv_zone`) is configured."""
    dcv = DcvSettings.from_settings(settings)
    return ZoneUpdater(dcv) if dcv is not None else None


def proxy_settings(settings: Settings) -> ProxySettings | None:
    """The edge's proxy mode from the settings; None in tracking mode."""
    if settings.edge_mode == "tracking":
        return None
    return ProxySettings(
        mode=settings.edge_mode,
        upstreams=tuple(parse_origin(origin) for origin in settings.edge_upstreams),
        pool=PoolSettings(
            connect_timeout=settings.upstream_connect_timeout,
            max_connections=settings.upstream_max_connections,
            keepalive_timeout=settings.upstream_keepalive_timeout,
            max_fails=settings.upstream_max_fails,
            ca_bundle=settings.upstream_ca_bundle,
            server_name=settings.upstream_server_name,
        ),
        first_byte_timeout=settings.upstream_first_byte_timeout,
        idle_timeout=settings.upstream_idle_timeout,
        max_body_bytes=settings.proxy_max_body_bytes,
        max_request_line_bytes=settings.proxy_max_request_line_bytes,
        trusted_proxies=settings.trusted_proxies,
    )


# A worker of `linkcert edge --processes N` starts its first full comparison with the store this
# long after it starts; see Runtime._start_edge.
POOLED_FIRST_FULL_SYNC = 5.0


@dataclass(frozen=True)
class PreloadedEdge:
    """What an edge pool worker inherits from the parent that forked it (service/edge_processes.py):
    the certificates the parent loaded, where that load left off, and the worker's sockets."""

    cache: CertificateCache
    cursor: int  # StoreFeeds.cursor() after the parent's load
    http: socket.socket | None
    https: socket.socket | None
    lazy: bool = False  # only names were loaded: certificates come at their first handshake


def edge_settings(
    settings: Settings, http: ListenSpec | None, https: ListenSpec | None, *, share_ports: bool
) -> EdgeSettings:
    """The edge's settings from linkcert's; raises this process's open-file limit first, since
    the connection bound depends on it."""
    open_files = raise_open_file_limit()
    proxy = proxy_settings(settings)
    edge = EdgeSettings(
        http=http,
        https=https,
        reuse_port=share_ports,
        first_byte_timeout=settings.edge_first_byte_timeout,
        handshake_timeout=settings.edge_handshake_timeout,
        idle_timeout=settings.edge_idle_timeout,
        max_connections=connection_budget(settings.edge_max_connections, open_files),
        max_connections_per_address=settings.edge_max_connections_per_address,
        certificate_wait=settings.edge_certificate_wait,
        click_repeat_limit=settings.click_repeat_limit,
        click_repeat_window=settings.click_repeat_window_seconds,
        proxy=proxy,
        record_events=settings.record_events,
        event_machine_seconds=settings.event_machine_seconds,
    )
    if proxy is None:
        return edge
    # Relayed requests carry the platform's cookies and headers, not only linkcert's links.
    return dataclasses.replace(edge, max_header_bytes=settings.proxy_max_header_bytes)


class Runtime:
    """Starts and stops the parts of one process in the right order."""

    def __init__(
        self,
        settings: Settings,
        roles: Roles | None = None,
        store: Store | None = None,
        preloaded: PreloadedEdge | None = None,
        *,
        create_database: bool = True,
        event_writer: bool = True,
    ) -> None:
        """`event_writer`: whether this process keeps the event writer of its edge's spool
        running (an edge pool gives that to one of its processes)."""
        self.settings = settings
        self.event_writer = event_writer
        # `linkcert serve` creates (and migrates) a SQLite database; a process of one role
        # needs one made by `linkcert migrate`.
        self.create_database = create_database
        self.roles = roles = roles or Roles()
        if roles.worker and not (settings.cname_targets or settings.edge_addresses):
            raise ConfigError(
                "cname_targets (LINKCERT_CNAME_TARGETS): the worker needs the platform's "
                "tracking host name(s) that customers point their CNAME at (or edge_addresses "
                "for names flattened at the apex)"
            )
        if roles.worker and not platform_names(settings):
            raise ConfigError(
                "platform_domains (LINKCERT_PLATFORM_DOMAINS): the worker needs the platform's "
                "own domains, so that no account can claim them; set it, or cname_targets"
            )
        self.keys = master_keys(settings)
        # Only the edge follows tracked links; the API mints them if a key is configured.
        self.tracking_key: TrackingKeys | bytes = tracking_key(settings) if roles.edge else b""
        self.store = store or Store(settings.effective_database_url)
        self.stop_event = asyncio.Event()
        self.preloaded = preloaded
        self.cache = preloaded.cache if preloaded is not None else CertificateCache()
        self.feeds = StoreFeeds(
            self.store,
            self.keys,
            self.cache,
            settings.event_client_ip,
            preload_limit=settings.edge_preload_certificates,
            lazy=preloaded.lazy if preloaded is not None else None,
        )
        self.accounts = CaAccounts(self.store, self.keys, settings)
        self.worker: Worker | None = None
        self.issuer: Issuer | None = None
        self.edge: Edge | None = None
        self.journal: Journal | None = None
        self.spool: EventSpool | None = None
        self.writer: WriterChild | None = None
        self.api_server: uvicorn.Server | None = None
        self.metrics_listener: MetricsListener | None = None
        self.sole_worker = SoleWorker.for_store(self.store) if roles.worker else None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # ACME and database calls run in threads; orders run concurrently, so make room.
        workers = max(32, self.settings.worker_concurrency * 2)
        loop.set_default_executor(ThreadPoolExecutor(max_workers=workers))
        if self.preloaded is None:  # an edge pool's parent checked before it forked
            await asyncio.to_thread(
                prepare_store, self.store, self.keys, create=self.create_database
            )
        if self.roles.worker:
            # Each CA's stored account, and wrong EAB credentials said now, not at first order.
            await asyncio.to_thread(self.accounts.check_at_start)
        if self.sole_worker is not None:
            self.sole_worker.acquire()
        if self.roles.edge:
            await self._start_edge()
        if self.roles.worker:
            self._start_worker()
        if self.roles.api:
            await self._start_api()
        if self.settings.metrics_listen:
            self.metrics_listener = serve_metrics(
                self.settings.metrics_listen,
                self.store,
                self.settings.metrics_store_refresh_seconds,
            )

    async def _start_edge(self) -> None:
        preloaded = self.preloaded
        http: ListenSpec | None = self.settings.http_listen
        https: ListenSpec | None = self.settings.https_listen
        if preloaded is None:
            await self.feeds.sync()
        else:
            http, https = preloaded.http, preloaded.https
        spool_dir = self.settings.data_dir / "event-spool"
        if self.settings.record_events:
            # Events go out of the edge through the spool, to the event writer.
            self.spool = EventSpool(spool_dir)
            try:
                await asyncio.to_thread(self.spool.open)
            except OSError as exc:
                raise ConfigError(f"cannot keep the event spool in {spool_dir}: {exc}") from None
        self.edge = Edge(
            tracking_key=self.tracking_key,
            certificates=self.cache,
            challenge_lookup=self.feeds.challenges,
            click_sink=self.feeds.save_clicks,
            account_upstreams=self.feeds.upstreams_of,
            settings=edge_settings(self.settings, http, https, share_ports=self.roles.share_ports),
            certificate_loader=self.feeds.load_certificate,
            spool=self.spool,
        )
        journal_dir = self.settings.data_dir / "edge-journal"
        await asyncio.to_thread(report_lost, journal_dir)
        await self.edge.start()
        track_edge(self.edge.counters)
        if self.spool is not None and self.event_writer:
            self.writer = WriterChild(self.store, spool_dir, self.settings.event_client_ip)
            self._spawn(self.writer.keep(self.stop_event))
        track_origins(self.edge.proxy.registry if self.edge.proxy is not None else None)
        if self.settings.edge_session_tickets:
            self._spawn(
                follow_ticket_keys(
                    self.store, self.keys, self.edge.use_ticket_keys, self.stop_event
                )
            )
        if preloaded is None:
            self._spawn(self.feeds.keep_in_sync(self.stop_event))
            return
        # The inherited cache is the parent's load: seconds old in a worker forked at start,
        # possibly days old in one the pool restarted. Certificates stored since then have
        # ids above the parent's cursor, so the first cheap pass, right away, loads them.
        # What a cheap pass cannot see is left to the full comparison: certificates removed,
        # revoked or expired since the load, and one stored with a lower id that committed
        # after the load had read a higher one. It comes a few seconds after start rather than
        # at once, so that workers starting together do not all read every served domain in
        # the second after their parent did.
        self._spawn(
            self.feeds.keep_in_sync(
                self.stop_event,
                since=preloaded.cursor,
                first_full_after=POOLED_FIRST_FULL_SYNC,
            )
        )

    def _start_worker(self) -> None:
        loop = asyncio.get_running_loop()

        def certificate_stored(name: str) -> None:
            # Called from a worker thread: serve the new certificate in this process at once.
            if self.edge is not None:
                asyncio.run_coroutine_threadsafe(self.feeds.refresh_domain(name), loop)

        def challenges_stored(name: str) -> None:
            # Called from a worker thread before the CA is told to validate: the edge in this
            # process holds the name's challenges before the worker goes on.
            if self.edge is None or self.stop_event.is_set():
                return
            done = asyncio.run_coroutine_threadsafe(self.feeds.refresh_challenges(name), loop)
            try:
                done.result(timeout=CHALLENGE_REFRESH_WAIT)
            except Exception as exc:  # the edge then reads the name when the CA asks
                done.cancel()
                log.warning("the edge could not read the challenges of %s: %s", name, exc)

        notifier = Notifier.from_settings(self.settings)
        health = CaHealth(
            down_after=self.settings.acme_ca_down_failures,
            window=self.settings.acme_ca_down_window,
            recheck=self.settings.acme_ca_recheck,
        )
        issuer = self.issuer = Issuer(
            self.store,
            self.keys,
            self.accounts.issuing_cas(self.store),
            key_type=self.settings.key_type,
            health=health,
            on_certificate=certificate_stored,
            on_challenges=challenges_stored,
            min_margin=timedelta(hours=self.settings.renewal_min_margin_hours),
            notifier=notifier,
            dcv=zone_updater(self.settings),
        )
        policy = LifecyclePolicy(
            dns_recheck=timedelta(hours=self.settings.dns_recheck_hours),
            release_after=timedelta(days=self.settings.moved_release_days),
            expiry_warning=timedelta(days=self.settings.expiry_warning_days),
        )
        self.worker = Worker(
            self.store,
            make_dns_check(self.settings, self.accounts.account_uris),
            issuer.obtain,
            refresh=issuer.refresh_renewal,
            remove=issuer.delete,
            policy=policy,
            notifier=notifier,
            concurrency=self.settings.worker_concurrency,
            lease=timedelta(seconds=self.settings.worker_lease_seconds),
            worker_id=self.sole_worker.identity if self.sole_worker is not None else None,
            reclaim=self.sole_worker is not None,
        )
        self._spawn(self.worker.run(self.stop_event))
        # The edges' shared TLS ticket keys: made ahead by the workers, read by the edges.
        self._spawn(keep_ticket_keys(self.store, self.keys, self.stop_event))
        # Alerts: send what the worker recorded, and warn of certificates near their end.
        self._spawn(run_deliveries(self.store, self.settings, self.stop_event, keys=self.keys))
        self._spawn(watch_expiry(self.store, self.settings, self.stop_event))
        # Click and open events: batches for accounts' endpoints, the broker, retention.
        self._spawn(run_dispatch(self.store, self.settings.event_webhook_batch, self.stop_event))
        self._spawn(run_broker(self.store, self.settings, self.stop_event))
        self._spawn(run_retention(self.store, self.settings.events_retention_days, self.stop_event))
        # Clicks past their retention, deleted in batches.
        self._spawn(
            keep_clicks_pruned(self.store, self.settings.click_retention_days, self.stop_event)
        )
        # The domains' history past its retention, likewise.
        self._spawn(
            keep_history_pruned(self.store, self.settings.history_retention_days, self.stop_event)
        )
        # Certificates no domain serves, once expired past their retention.
        self._spawn(
            keep_certificates_pruned(
                self.store, self.settings.certificate_retention_days, self.stop_event
            )
        )

    async def _start_api(self) -> None:
        from linkcert.web import create_app

        host, port = parse_host_port(self.settings.api_listen)
        app = create_app(self.store, self.settings, wake=self.wake)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.api_server = uvicorn.Server(config)
        self._spawn(self.api_server.serve())
        while not self.api_server.started:
            await asyncio.sleep(0.01)

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    @property
    def api_port(self) -> int | None:
        if self.api_server is None or not self.api_server.servers:
            return None
        port: int = self.api_server.servers[0].sockets[0].getsockname()[1]
        return port

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def aclose(self) -> None:
        """Stop in order: no new work, let running passes finish, flush clicks, close."""
        self.stop_event.set()
        if self.api_server is not None:
            self.api_server.should_exit = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.edge is not None:
            await self.edge.aclose()
            if self.journal is not None:
                self.journal.remove()
            if self.writer is not None:
                await self.writer.aclose()
            track_edge(None)
            track_origins(None)
        if self.metrics_listener is not None:
            self.metrics_listener.close()
        self.feeds.close()
        self.store.close()
        if self.sole_worker is not None:
            self.sole_worker.release()

    async def run_until_stopped(self) -> None:
        await self.start()
        await self.stop_event.wait()
