"""No stop loses a click: an edge killed with `kill -9` in the middle of a stream of clicks has
spooled every click it answered, and each becomes exactly one event; a clean stop (SIGTERM)
loses none either."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

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


class _Clicker(threading.Thread):
    """Clicks links numbered from `first` one after another on one keep-alive connection,
    until told to stop or the connection fails; notes the numbers answered with a redirect."""

    def __init__(self, port: int, first: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.number = first
        self.answered: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        minter = Minter(tracking_key_from_secret(TRACKING_SECRET), DOMAIN)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                while not self.halt.is_set():
                    number = self.number
                    token = minter.token(f"https://shop.example/{number}", f"n={number}".encode())
                    sock.sendall(f"GET /c/{token} HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
                    answer = b""
                    while b"\r\n\r\n" not in answer:
                        chunk = sock.recv(4096)
                        if not chunk:
                            return
                        answer += chunk
                    assert answer.startswith(b"HTTP/1.1 302"), answer[:200]
                    self.answered.append(number)
                    self.number += 1
        except OSError:
            return


def _numbers(store: Store) -> list[int]:
    """The click number in each event's data, in event id order."""
    with store.session() as session:
        data = session.scalars(select(LinkEvent.data).order_by(LinkEvent.id)).all()
    return [int(bytes(value).decode().removeprefix("n=")) for value in data]


def _wait_for_events(store: Store, count: int, process: Process) -> list[int]:
    for _ in range(1200):
        numbers = _numbers(store)
        if len(numbers) >= count:
            return numbers
        time.sleep(0.05)
    raise AssertionError(f"{len(_numbers(store))} events of {count}: " + process.output()[-3000:])


def test_kill_9_mid_stream_loses_no_answered_click_and_writes_each_once(
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
        clicker = _Clicker(http_port, 0)
        clicker.start()
        # Killed while clicks come in, some of them answered and not yet inserted.
        while len(clicker.answered) < 400:
            assert clicker.is_alive()
            time.sleep(0.01)
        first.kill()
        clicker.join(timeout=30)
    finally:
        first.stop()
    answered = clicker.answered
    sent = clicker.number + 1  # the last request may have been spooled and not answered

    # The killed edge's writer inserts what it had spooled (or the next edge's does).
    second = Process("edge", environment, tmp_path, "second")
    try:
        _wait_serving(http_port, second)
        after = _Clicker(http_port, 1_000_000)
        after.start()
        while len(after.answered) < 5:
            assert after.is_alive()
            time.sleep(0.01)
        after.halt.set()
        after.join(timeout=30)
        _wait_for_events(store, len(answered) + len(after.answered), second)
    finally:
        assert second.stop() == 0
    numbers = _numbers(store)
    assert len(numbers) == len(set(numbers)), "an event was written twice"
    assert set(answered) <= set(numbers), "an answered click has no event"
    assert set(after.answered) <= set(numbers)
    assert set(numbers) <= set(range(sent)) | set(after.answered)
    # One edge's events have ids in the order of its clicks.
    assert [n for n in numbers if n < 1_000_000] == sorted(n for n in numbers if n < 1_000_000)
    # Every segment was inserted and deleted, and no journal note is left behind.
    assert not list((tmp_path / "event-spool").glob("*.spool"))
    assert not list((tmp_path / "edge-journal").glob("*.json"))
    store.close()
