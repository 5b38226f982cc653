"""The mechanism under `linkcert edge --processes N`: fork N workers sharing listening ports.

Generic: it knows sockets, forks, signals and restarts, not certificates or the store (what
each worker runs is `service/edge_processes.py`, which uses this pool). One Python process
serves from one core. The pool binds the listening sockets itself, one set
per worker, all on the same ports with SO_REUSEPORT, so the kernel spreads new connections
across workers (by a hash of the addresses) and a port given as 0 is the same port for all.
Then it forks the workers and supervises them:

    sys.exit(run_edge_pool(PoolSettings(workers=2, https="0.0.0.0:443"), serve_edge))

`serve_edge(worker)` is an async function run in each worker on uvloop. It starts an Edge with
`worker.http_socket`/`worker.https_socket` as its listen specs and returns once
`worker.stopping` is set (by SIGTERM, SIGINT, or the supervisor going away), after closing the
Edge. Whatever was set up before `run()` (say, a CertificateCache filled from the store) is
inherited by every worker and shared copy-on-write until a worker changes it; `run()` freezes
the garbage collector's view of it first so that collections do not copy those pages.

A worker that exits while the pool is not stopping is forked again after `restart_delay`,
doubled each time a worker dies young, so a worker that cannot start does not spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import FrameType
from typing import Any

from linkcert.edge.listen import parse_address

logger = logging.getLogger(__name__)

_YOUNG_SECONDS = 10.0  # a worker that dies younger than this makes the next restart wait longer
_MAX_RESTART_DELAY = 30.0


@dataclass(frozen=True, slots=True)
class PoolSettings:
    workers: int
    http: str | None = None  # "host:port", as in EdgeSettings
    https: str | None = None
    backlog: int = 1024
    restart_delay: float = 0.5
    stop_timeout: float = 30.0  # after SIGTERM, how long workers get before SIGKILL


@dataclass(slots=True)
class PoolWorker:
    """What one worker is given: its number, its own listening sockets, and its stop signal."""

    index: int
    http_socket: socket.socket | None
    https_socket: socket.socket | None
    stopping: asyncio.Event


WorkerMain = Callable[[PoolWorker], Coroutine[Any, Any, None]]


def _bind_group(spec: str | None, count: int, backlog: int) -> list[socket.socket | None]:
    """`count` listening sockets on the same address and port (port 0: one picked for all)."""
    if spec is None:
        return [None] * count
    host, port = parse_address(spec)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket | None] = []
    try:
        for _ in range(count):
            sock = socket.create_server(
                (host, port), family=family, backlog=backlog, reuse_port=True
            )
            sockets.append(sock)
            port = sock.getsockname()[1]  # the rest join the first one's port
    except BaseException:
        for opened in sockets:
            if opened is not None:
                opened.close()
        raise
    return sockets


class EdgePool:
    """Forks `settings.workers` edge processes and keeps them running until told to stop."""

    def __init__(self, settings: PoolSettings, worker_main: WorkerMain) -> None:
        if settings.workers < 1:
            raise ValueError("an edge pool needs at least one worker")
        if settings.http is None and settings.https is None:
            raise ValueError("PoolSettings needs an http or an https listen address (or both)")
        self.settings = settings
        self._worker_main = worker_main
        self._http: list[socket.socket | None] = []
        self._https: list[socket.socket | None] = []
        self.http_port: int | None = None
        self.https_port: int | None = None
        self._children: dict[int, int] = {}  # pid → worker index
        self._stopping = False

    def bind(self) -> None:
        """Open every worker's listening sockets; `http_port`/`https_port` then hold the ports."""
        settings = self.settings
        self._http = _bind_group(settings.http, settings.workers, settings.backlog)
        try:
            self._https = _bind_group(settings.https, settings.workers, settings.backlog)
        except BaseException:
            self.close()
            raise
        self.http_port = _port(self._http[0])
        self.https_port = _port(self._https[0])

    @property
    def worker_pids(self) -> list[int]:
        return list(self._children)

    def run(self) -> int:
        """Fork the workers and supervise them until SIGTERM or SIGINT; 0 once all have exited
        (1 if some had to be killed). Call from the main thread, before starting any other
        thread or event loop: a forked child gets only the thread that forked."""
        if not self._http and not self._https:
            self.bind()
        # What the workers inherit is shared copy-on-write; keep the collector off those pages.
        gc.collect()
        gc.freeze()
        previous = {
            signum: signal.signal(signum, self._on_stop_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        # The workers watch this pipe: when the supervisor is gone, its end closes and they stop.
        alive_read, alive_write = os.pipe()
        delays = [self.settings.restart_delay] * self.settings.workers
        started_at = [0.0] * self.settings.workers
        try:
            for index in range(self.settings.workers):
                started_at[index] = time.monotonic()
                self._fork(index, alive_read, alive_write)
            while self._children and not self._stopping:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                if pid not in self._children:
                    continue
                index = self._children.pop(pid)
                if self._stopping:
                    continue
                lived = time.monotonic() - started_at[index]
                logger.error(
                    "edge worker %d (pid %d) exited with status %d after %.1fs; restarting",
                    index,
                    pid,
                    os.waitstatus_to_exitcode(status),
                    lived,
                    extra={"worker": index, "pid": pid},
                )
                if lived < _YOUNG_SECONDS:
                    delays[index] = min(_MAX_RESTART_DELAY, delays[index] * 2)
                else:
                    delays[index] = self.settings.restart_delay
                self._sleep_unless_stopping(delays[index])
                if not self._stopping:
                    started_at[index] = time.monotonic()
                    self._fork(index, alive_read, alive_write)
            return self._stop_children()
        finally:
            os.close(alive_read)
            os.close(alive_write)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.close()
            gc.unfreeze()

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _sleep_unless_stopping(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, seconds))

    def _stop_children(self) -> int:
        """Ask every worker to stop, wait up to `stop_timeout`, then kill what is left."""
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stop_timeout
        while self._children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._children.clear()
                break
            if pid:
                self._children.pop(pid, None)
            else:
                time.sleep(0.02)
        killed = bool(self._children)
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            logger.error("edge worker pid %d did not stop in time: killed", pid)
        self._children.clear()
        return 1 if killed else 0

    def _fork(self, index: int, alive_read: int, alive_write: int) -> None:
        pid = os.fork()
        if pid:
            self._children[pid] = index
            return
        # In the worker: never return into the supervisor's code.
        status = 1
        try:
            os.close(alive_write)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            self._keep_only(index)
            status = _run_worker(
                self._worker_main,
                index,
                self._http[index],
                self._https[index],
                alive_read,
            )
        except BaseException:
            logger.exception("edge worker %d failed", index)
        finally:
            logging.shutdown()
            os._exit(status)

    def _keep_only(self, index: int) -> None:
        """In a worker: close the other workers' sockets, so only their owners hold them."""
        for group in (self._http, self._https):
            for position, sock in enumerate(group):
                if sock is not None and position != index:
                    sock.close()

    def close(self) -> None:
        """Close the listening sockets (run() does so when it returns)."""
        for sock in (*self._http, *self._https):
            if sock is not None:
                sock.close()


def run_edge_pool(settings: PoolSettings, worker_main: WorkerMain) -> int:
    """Bind, fork the workers and supervise them until SIGTERM or SIGINT: what `linkcert serve`
    calls for a multi-process edge. Returns the process's exit status."""
    pool = EdgePool(settings, worker_main)
    pool.bind()
    return pool.run()


def _run_worker(
    worker_main: WorkerMain,
    index: int,
    http_socket: socket.socket | None,
    https_socket: socket.socket | None,
    alive_read: int,
) -> int:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)

        def supervisor_gone() -> None:
            # The pipe stays readable at EOF: stop watching, or this would run on every turn.
            loop.remove_reader(alive_read)
            stopping.set()

        # Readable only at EOF: the supervisor has gone (even by SIGKILL).
        loop.add_reader(alive_read, supervisor_gone)
        await worker_main(PoolWorker(index, http_socket, https_socket, stopping))

    uvloop.run(main())
    return 0


def _port(sock: socket.socket | None) -> int | None:
    if sock is None:
        return None
    port: int = sock.getsockname()[1]
    return port
