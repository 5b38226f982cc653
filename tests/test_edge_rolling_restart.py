"""Edge processes sharing a port restart one at a time without failing a single request.

The kernel part (net.ipv4.tcp_migrate_req) hands a stopping process's queued connections to the
others; the edge's part is to answer every connection it accepted, including those whose first
request had not arrived yet when it was told to stop.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkcert.edge import listen
from linkcert.testbed.waiting import free_port

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: restart.test\r\nConnection: close\r\n\r\n"


@pytest.fixture
def queued_connections_migrate() -> Iterator[None]:
    """net.ipv4.tcp_migrate_req on for the test, as docs/deploy.md asks of an edge machine."""
    sysctl = listen.MIGRATE_SYSCTL
    try:
        before = sysctl.read_text()
        sysctl.write_text("1\n")
    except OSError as exc:
        message = f"cannot turn on {sysctl} here ({exc}); needs Linux 5.14+ and root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield
    finally:
        sysctl.write_text(before)


def _start(port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.edge_restart_child", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    return output.strip()


def test_rolling_restarts_under_load_fail_no_request(queued_connections_migrate: None) -> None:
    port = free_port()
    edges = [_start(port), _start(port)]
    answered = 0
    failures: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    stopping = threading.Event()

    def client() -> None:
        nonlocal answered
        while not stopping.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                    conn.sendall(REQUEST)
                    response = b""
                    while chunk := conn.recv(65536):
                        response += chunk
                outcome = "ok" if response.startswith(b"HTTP/1.1 200 ") else repr(response[:40])
            except OSError as exc:
                outcome = type(exc).__name__
            with lock:
                if outcome == "ok":
                    answered += 1
                else:
                    failures[outcome] += 1

    clients = [threading.Thread(target=client) for _ in range(24)]
    for thread in clients:
        thread.start()
    summaries = []
    try:
        time.sleep(0.5)
        for _ in range(2):
            for index in range(len(edges)):
                # The replacement joins the port first, then the old process stops.
                replacement = _start(port)
                summaries.append(_stop(edges[index]))
                edges[index] = replacement
                time.sleep(0.3)
    finally:
        stopping.set()
        for thread in clients:
            thread.join(timeout=30)
        for process in edges:
            summaries.append(_stop(process))

    assert failures == collections.Counter(), f"{sum(failures.values())} requests failed"
    assert answered > 100
    # Every connection an edge accepted was answered, including those caught by its stop.
    for summary in summaries:
        _, accepted, _, requests = summary.split()
        assert accepted == requests, summary


def test_the_edge_warns_when_queued_connections_would_be_reset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sysctl = tmp_path / "tcp_migrate_req"
    sysctl.write_text("0\n")
    monkeypatch.setattr(listen, "MIGRATE_SYSCTL", sysctl)
    listen.check_queued_connections_migrate.cache_clear()
    try:
        with listen.open_listener("127.0.0.1:0", reuse_port=False, backlog=8):
            pass
        assert "tcp_migrate_req" not in caplog.text  # not shared: nothing to warn about
        with listen.open_listener("127.0.0.1:0", reuse_port=True, backlog=8):
            pass
        assert "sysctl -w net.ipv4.tcp_migrate_req=1" in caplog.text
        assert listen.queued_connections_migrate() is False
        sysctl.write_text("1\n")
        assert listen.queued_connections_migrate() is True
        sysctl.unlink()
        assert listen.queued_connections_migrate() is None
    finally:
        listen.check_queued_connections_migrate.cache_clear()
