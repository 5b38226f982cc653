"""The edge's bounds in the product: `linkcert edge --processes 2`, forked workers on uvloop.

Five hundred connections that never send a byte are all closed by the first-byte limit while a
good client keeps being served; the processes start with their open-file limit raised.
"""

from __future__ import annotations

import resource
import socket
import time
import urllib.request
from pathlib import Path

from linkcert.config import Settings
from linkcert.store import Store
from linkcert.testbed.environment import settings_env
from linkcert.testbed.waiting import free_port
from tests.e2e_support import TRACKING_SECRET
from tests.edge_processes_support import MASTER_KEY, PROCESSES, metrics_base_port
from tests.fleet_support import Process, child_pids

IDLE_CONNECTIONS = 500


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: str = response.read().decode()
            return body
    except OSError:
        return None


def series(body: str, name: str) -> float:
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def healthz(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: pool.test\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


def test_idle_connections_are_closed_by_the_first_byte_limit_while_clients_are_served(
    tmp_path: Path,
) -> None:
    http_port, https_port = free_port(), free_port()
    metrics_port = metrics_base_port({http_port, https_port})
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "master_key": MASTER_KEY,
            "tracking_key": TRACKING_SECRET,
            "http_listen": f"127.0.0.1:{http_port}",
            "https_listen": f"127.0.0.1:{https_port}",
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "edge_first_byte_timeout": 2.0,
        }
    )
    store = Store(settings.effective_database_url)
    store.migrate()
    store.close()
    # Started with a low soft open-file limit, as many systems start services.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    try:
        process = Process(
            "edge", settings_env(settings), tmp_path, "edge", "--processes", str(PROCESSES)
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    metrics_ports = [metrics_port + index for index in range(PROCESSES)]
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while any(scrape(port) is None for port in metrics_ports):
            assert process.popen.poll() is None, process.output()[-3000:]
            assert time.monotonic() < deadline, "the edge processes did not start"
            time.sleep(0.1)
        workers = child_pids(process.popen.pid)
        assert len(workers) == PROCESSES
        for pid in (process.popen.pid, *workers):
            assert soft_open_files(pid) == hard

        # From five addresses: a hundred each stays under the per-address bound (256), so that
        # only the first-byte limit closes them.
        for index in range(IDLE_CONNECTIONS):
            source = (f"127.0.0.{1 + index % 5}", 0)
            idle.append(
                socket.create_connection(
                    ("127.0.0.1", http_port), timeout=30, source_address=source
                )
            )
        # A good client is served all along, on fresh connections, while the silent ones wait.
        served = 0
        open_idle = list(idle)
        deadline = time.monotonic() + 60
        while open_idle:
            assert time.monotonic() < deadline, f"{len(open_idle)} silent connections still open"
            assert healthz(http_port) == 200
            served += 1
            still_open = []
            for sock in open_idle:
                sock.setblocking(False)
                try:
                    data = sock.recv(1)
                except BlockingIOError:
                    still_open.append(sock)
                    continue
                except ConnectionResetError:
                    continue
                assert data == b"", "the edge sent something on a silent connection"
            open_idle = still_open
            time.sleep(0.05)
        assert served > 0

        closed = 0.0
        for port in metrics_ports:
            body = scrape(port)
            assert body is not None
            closed += series(
                body, 'linkcert_edge_connections_closed_total{reason="first_byte_timeout"}'
            )
        # The good client's connections spoke: only the silent ones hit the limit.
        assert closed == IDLE_CONNECTIONS
        assert healthz(http_port) == 200
    finally:
        for sock in idle:
            sock.close()
        code = process.stop()
    output = process.output()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
