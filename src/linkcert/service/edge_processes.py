"""`linkcert edge --processes N`: one certificate load, N edge processes sharing it and the ports.

What each process runs and what the parent prepares for them; the forking itself is the generic
pool of `service/prefork.py`.

One Python process serves from one core, so an edge machine runs one edge process per core.
Started separately, each would read and hold every certificate itself. Here the parent reads
them once into a CertificateCache, binds the listening sockets and forks the workers
(service/prefork.py): they share the cache's pages copy-on-write, and the pool restarts any
that dies. Each worker is then an ordinary edge runtime (service/runtime.py) on its own event
loop, with its own database engine, its own feed following the store from where the parent's
load left off, its own click batches, and its own /metrics listener if one is configured.
"""

from __future__ import annotations

import logging

from linkcert.config import ConfigError, Settings
from linkcert.edge import CertificateCache
from linkcert.edge.fdlimit import raise_open_file_limit
from linkcert.hostport import parse_host_port
from linkcert.service.feeds import StoreFeeds
from linkcert.service.prefork import EdgePool, PoolSettings, PoolWorker, WorkerMain
from linkcert.service.roles import Roles
from linkcert.service.runtime import (
    PreloadedEdge,
    Runtime,
    master_keys,
    prepare_store,
    tracking_key,
)
from linkcert.store import Store

log = logging.getLogger("linkcert.edge")

EDGE_ROLES = Roles(worker=False, edge=True, api=False, share_ports=True)


def run_edge_processes(settings: Settings) -> int:
    """Load the certificates, fork `settings.edge_processes` edge workers and supervise them
    until SIGTERM or SIGINT; returns the exit status. Call from the main thread, with no
    thread or event loop started: a forked child gets only the thread that forked."""
    processes = settings.edge_processes
    keys = master_keys(settings)
    tracking_key(settings)  # checked here: a missing key must stop the parent, not each worker
    _check_metrics_ports(settings.metrics_listen, processes)
    raise_open_file_limit()  # once here, inherited by every worker
    cache = CertificateCache()
    store = Store(settings.effective_database_url)
    try:
        prepare_store(store, keys, create=False)
        feeds = StoreFeeds(store, keys, cache, preload_limit=settings.edge_preload_certificates)
        loaded = feeds.sync_here()
        cursor = feeds.cursor()
        lazy = bool(feeds.lazy)
        cache.pack()
    finally:
        # Not one database connection may cross the fork: two processes talking over one
        # socket interleave their messages. Each worker opens an engine of its own.
        store.close()
    if lazy:
        log.info(
            "loaded %d names (%d failed), each certificate to be read at its first handshake "
            "(more than edge_preload_certificates=%d); starting %d edge processes",
            loaded.loaded,
            loaded.failed,
            settings.edge_preload_certificates,
            processes,
        )
    else:
        log.info(
            "loaded %d certificates (%d failed); starting %d edge processes",
            loaded.loaded,
            loaded.failed,
            processes,
        )
    pool = EdgePool(
        PoolSettings(workers=processes, http=settings.http_listen, https=settings.https_listen),
        _worker_main(settings, cache, cursor, lazy),
    )
    pool.bind()
    return pool.run()


def _worker_main(
    settings: Settings, cache: CertificateCache, cursor: int, lazy: bool
) -> WorkerMain:
    async def serve(worker: PoolWorker) -> None:
        preloaded = PreloadedEdge(cache, cursor, worker.http_socket, worker.https_socket, lazy)
        # Created here, after the fork: the runtime's store (engine) belongs to this worker.
        # One event writer for the machine's spool: worker 0 keeps it (a new one if worker 0
        # is started again; the old one exits with the process that started it).
        runtime = Runtime(
            worker_settings(settings, worker.index),
            EDGE_ROLES,
            preloaded=preloaded,
            event_writer=worker.index == 0,
        )
        try:
            await runtime.start()
            await worker.stopping.wait()
        finally:
            # Drains connections in flight and writes the recorded clicks before closing.
            await runtime.aclose()

    return serve


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker `index`'s settings: its /metrics on `metrics_listen`'s port plus `index`, since
    each worker counts its own connections and only one process can listen on a port."""
    if settings.metrics_listen is None:
        return settings
    host, port = parse_host_port(settings.metrics_listen)
    if port == 0:  # any free port, for each
        return settings
    shown = f"[{host}]" if ":" in host else host
    return settings.model_copy(update={"metrics_listen": f"{shown}:{port + index}"})


def _check_metrics_ports(metrics_listen: str | None, processes: int) -> None:
    if metrics_listen is None:
        return
    _, port = parse_host_port(metrics_listen)
    if port and port + processes - 1 > 65535:
        raise ConfigError(
            f"metrics_listen (LINKCERT_METRICS_LISTEN): {processes} edge processes listen on "
            f"ports {port} to {port + processes - 1}, past 65535: choose a lower port"
        )
