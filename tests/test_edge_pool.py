"""The edge pool: workers sharing one port, restarted when they die, stopped together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from linkcert.service.prefork import EdgePool, PoolSettings, PoolWorker


@dataclass
class RunningPool:
    process: subprocess.Popen[str]
    port: int
    log: Path

    def events(self, kind: str) -> list[tuple[int, int]]:
        """(worker index, pid) of every "started"/"stopped" line so far."""
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text().splitlines():
            parts = line.split()
            if parts[0] == kind:
                found.append((int(parts[1]), int(parts[2])))
        return found

    def wait_for(self, kind: str, count: int, timeout: float = 20.0) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(kind)
            if len(events) >= count:
                return events
            time.sleep(0.02)
        raise AssertionError(f"expected {count} {kind!r} lines, got {self.events(kind)}")


@contextmanager
def running_pool(tmp_path: Path, workers: int) -> Iterator[RunningPool]:
    log = tmp_path / "pool.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.prefork_child", str(workers), str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield RunningPool(process, port, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _health(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: pool.test\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited: it only waits for its parent to collect it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_share_the_port_and_stop_together_on_sigterm(tmp_path: Path) -> None:
    with running_pool(tmp_path, 2) as pool:
        started = pool.wait_for("started", 2)
        assert sorted(index for index, _ in started) == [0, 1]
        for _ in range(20):
            assert _health(pool.port).startswith(b"HTTP/1.1 200 ")
        pool.process.send_signal(signal.SIGTERM)
        assert pool.process.wait(timeout=20) == 0
        assert sorted(pool.events("stopped")) == sorted(started)


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(tmp_path: Path) -> None:
    with running_pool(tmp_path, 2) as pool:
        started = pool.wait_for("started", 2)
        victim_index, victim_pid = started[0]
        os.kill(victim_pid, signal.SIGKILL)
        restarted = pool.wait_for("started", 3)[2]
        assert restarted[0] == victim_index and restarted[1] != victim_pid
        for _ in range(20):
            assert _health(pool.port).startswith(b"HTTP/1.1 200 ")
        pool.process.send_signal(signal.SIGTERM)
        assert pool.process.wait(timeout=20) == 0


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    with running_pool(tmp_path, 2) as pool:
        started = pool.wait_for("started", 2)
        pool.process.kill()
        pool.process.wait(timeout=10)
        stopped = pool.wait_for("stopped", 2)
        assert sorted(stopped) == sorted(started)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for _, pid in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for _, pid in started)


def test_settings_are_checked_before_anything_is_bound() -> None:
    async def serve(worker: PoolWorker) -> None:
        pass

    with pytest.raises(ValueError, match="at least one worker"):
        EdgePool(PoolSettings(workers=0, http="127.0.0.1:0"), serve)
    with pytest.raises(ValueError, match="http or an https"):
        EdgePool(PoolSettings(workers=2), serve)


def test_bind_puts_every_worker_on_the_same_port() -> None:
    async def serve(worker: PoolWorker) -> None:
        pass

    pool = EdgePool(PoolSettings(workers=3, http="127.0.0.1:0", https="127.0.0.1:0"), serve)
    pool.bind()
    try:
        http_ports = {sock.getsockname()[1] for sock in pool._http if sock is not None}
        https_ports = {sock.getsockname()[1] for sock in pool._https if sock is not None}
        assert http_ports == {pool.http_port} and https_ports == {pool.https_port}
        assert len(pool._http) == len(pool._https) == 3
    finally:
        pool.close()
