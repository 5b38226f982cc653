"""`linkcert serve --workers N --edges M`: a one-machine fleet under one supervisor.

The supervisor starts N worker processes, one `linkcert edge --processes M` (which loads the
certificates once and forks M edge processes sharing them and the listening ports, restarting
any of them that dies: service/edge_processes.py) and one API process. It restarts any child that
dies (backing off if one keeps dying), and on SIGTERM or Ctrl-C stops them all gracefully:
edges finish the requests in flight and flush their clicks, workers finish their current step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("linkcert.fleet")

RESTART_DELAYS = (0.5, 1, 2, 5, 10, 30)
STOP_TIMEOUT = 20.0


@dataclass
class Child:
    role: str
    index: int
    args: tuple[str, ...] = ()
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    history: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"


def child_command(role: str, config_file: Path | None, args: tuple[str, ...] = ()) -> list[str]:
    command = [sys.executable, "-m", "linkcert"]
    if config_file is not None:
        command += ["--config", str(config_file)]
    return [*command, role, *args]


class Supervisor:
    def __init__(self, workers: int, edges: int, api: bool, config_file: Path | None) -> None:
        self.config_file = config_file
        self.children = [Child("worker", i) for i in range(workers)]
        if edges:
            # One edge child forking the M processes, rather than M children: they then share
            # one copy of the certificates in memory instead of each loading its own.
            self.children.append(Child("edge", 0, ("--processes", str(edges))))
        if api:
            self.children.append(Child("api", 0))
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        watchers = [asyncio.ensure_future(self._keep_running(child)) for child in self.children]
        await self.stopping.wait()
        await self._stop_all()
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    async def _keep_running(self, child: Child) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            child.started_at = loop.time()
            child.process = await asyncio.create_subprocess_exec(
                *child_command(child.role, self.config_file, child.args),
                env={**os.environ, "LINKCERT_PROCESS_NAME": child.name},
            )
            log.info("started %s (pid %s)", child.name, child.process.pid)
            code = await child.process.wait()
            if self.stopping.is_set():
                return
            child.history.append(code)
            # A process that ran a while before dying is restarted at once; one that keeps
            # dying right away waits longer each time, so a bad setting does not spin.
            if loop.time() - child.started_at > 60:
                child.restarts = 0
            delay = RESTART_DELAYS[min(child.restarts, len(RESTART_DELAYS) - 1)]
            child.restarts += 1
            log.warning("%s exited with %s; restarting in %g s", child.name, code, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)

    async def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(p.wait() for p in running)), timeout=STOP_TIMEOUT
            )
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
