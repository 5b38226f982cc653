"""An edge killed with `kill -9` loses at most the events it held in memory, and the next edge
to start says how many may have been lost; a clean stop (SIGTERM) loses none."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from linkcert.config import Settings
from linkcert.store import LinkEvent, Store
from linkcert.testbed.environment import settings_env
from linkcert.testbed.waiting import free_port
from linkcert.tracking import Minter, tracking_key_from_secret
from tests.certs_support import ThrowawayCA
from tests.e2e_support import TRACKING_SECRET
from tests.edge_processes_support import MASTER_KEY, serve_certificate
from tests.fleet_support import Process

pytestmark = pytest.mark.postgres

DOMAIN = "links.durable.test"
CLICKS = 300


def _settings(db_url: str, tmp_path: Path) -> tuple[Settings, int]:
    http_port = free_port()
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "database_url": db_url,
            "master_key": MASTER_KEY,
            "tracking_key": TRACKING_SECRET,
            "http_listen": f"127.0.0.1:{http_port}",
            "https_listen": f"127.0.0.1:{free_port()}",
        }
    )
    return settings, http_port


def _wait_serving(port: int, process: Process) -> None:
    for _ in range(600):
        assert process.popen.poll() is None, process.output()[-3000:]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("the edge did not start serving")


def _click(port: int, count: int) -> None:
    minter = Minter(tracking_key_from_secret(TRACKING_SECRET), DOMAIN)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for number in range(count):
            token = minter.token(f"https://shop.example/{number}", f"n={number}".encode())
            sock.sendall(f"GET /c/{token} HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 302"), answer[:200]


def _written(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(LinkEvent)) or 0)


def test_kill_9_loses_at_most_what_the_next_start_reports(
    postgres_url: str, tmp_path: Path
) -> None:
    store = Store(postgres_url)
    store.migrate()
    # The edge answers links only on names it serves: a proven name with a certificate.
    serve_certificate(store, ThrowawayCA.create("Durability Test CA"), DOMAIN)
    settings, http_port = _settings(postgres_url, tmp_path)
    environment = settings_env(settings)
    first = Process("edge", environment, tmp_path, "first")
    try:
        _wait_serving(http_port, first)
        _click(http_port, CLICKS)
        # Wait for the process's note to count every click, then kill it outright: whatever
        # it had not written by then is what the note says it held.
        note_path = tmp_path / "edge-journal" / f"{first.popen.pid}.json"
        for _ in range(400):
            try:
                if json.loads(note_path.read_text())["recorded"] == CLICKS:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        else:
            raise AssertionError("the edge never noted its clicks")
        first.kill()
    finally:
        first.stop()
    written = _written(store)
    assert written <= CLICKS

    second = Process("edge", environment, tmp_path, "second")
    try:
        _wait_serving(http_port, second)
        _click(http_port, 5)
    finally:
        assert second.stop() == 0
    output = second.output()
    found = re.search(
        rf"edge process {first.popen.pid} stopped without writing its events .*?: about (\d+) "
        "click and open events may have been lost",
        output,
    )
    assert found, output[-3000:]
    reported = int(found.group(1))
    assert written + reported >= CLICKS  # every event is either written or counted as lost
    # The clean stop wrote all of its own, and left no note behind.
    assert _written(store) == written + 5
    assert not list((tmp_path / "edge-journal").glob("*.json"))
    store.close()
