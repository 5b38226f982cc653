"""`linkcert edge --processes N`: certificates loaded once, N forked edge processes following the
store on their own, a dead one replaced, clicks written on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from linkcert.config import Settings
from linkcert.domains import create_account, set_tracking_domain
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.names import NamePolicy
from linkcert.service.edge_processes import worker_settings
from linkcert.store import Domain, LinkEvent, Store
from linkcert.testbed.environment import settings_env
from linkcert.testbed.waiting import free_port
from linkcert.ticketkeys import ensure_ticket_keys
from linkcert.tracking import make_token, tracking_key_from_secret
from linkcert.uploads import check_upload, store_upload
from tests.certs_support import ThrowawayCA, pem
from tests.e2e_support import TRACKING_SECRET, https_get, served_serial
from tests.fleet_support import Process, child_pids
from tests.ownership_support import prove

POLICY = NamePolicy(allow_test_domains=True)
MASTER_KEY = generate_master_key("pool")
PROCESSES = 2


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create("Edge Pool Test CA")


def serve_certificate(store: Store, ca: ThrowawayCA, name: str) -> None:
    """Store a certificate for `name` as its current one, as the worker (or an upload) does."""
    account = create_account(store, name)
    set_tracking_domain(store, account.id, name, POLICY)
    prove(store, name)
    leaf = ca.issue(name)
    checked = check_upload(leaf.chain_pem, leaf.key_pem, name, private_roots=leaf.roots)
    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == name)).one()
        keys = MasterKeys.parse(MASTER_KEY)
        domain.current_certificate_id = store_upload(session, keys, domain, checked).id


def metrics_base_port(taken: set[int]) -> int:
    """A free port P with P+1, ... free too and none `taken`: worker i serves /metrics on P+i."""
    for _ in range(50):
        port = free_port()
        if port + PROCESSES - 1 > 65535 or taken & set(range(port, port + PROCESSES)):
            continue
        probes = []
        try:
            for offset in range(1, PROCESSES):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return port
    raise AssertionError("no run of free ports for the workers' /metrics")


ACCEPTED = "linkcert_edge_connections_accepted_total"
CLICKS = 'linkcert_edge_clicks_total{kind="click"}'


def counter(metrics_port: int, series: str) -> int | None:
    """One of a worker's counters, from its /metrics (None: not serving yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith(series + " "):
            return int(float(line.split()[1]))
    return None


@dataclass
class RunningEdge:
    process: Process
    https_port: int
    metrics_ports: list[int]
    root_pem: str

    def counts(self, series: str = ACCEPTED) -> list[int | None]:
        return [counter(port, series) for port in self.metrics_ports]

    def wait_until_all_serve(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while None in self.counts():
            assert self.process.popen.poll() is None, self.process.output()[-3000:]
            assert time.monotonic() < deadline, "the edge workers did not start"
            time.sleep(0.1)

    def attempt(self, name: str) -> tuple[int, bool]:
        """One fresh connection for `name`: the worker the kernel gave it to (told by which
        worker's connection count went up) and whether it presented `name`'s certificate."""
        served = False

        def connect() -> None:
            nonlocal served
            try:
                served = served_serial(self.https_port, name, self.root_pem) > 0
            except (OSError, ssl.SSLError):
                served = False

        return self.worker_taking(connect), served

    def worker_taking(self, connect: Callable[[], object]) -> int:
        """The worker that took the one connection `connect` makes (its count goes up)."""
        before = self.counts()
        connect()
        deadline = time.monotonic() + 5
        while True:
            after = self.counts()
            took = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a != b]
            if took:
                assert len(took) == 1, (before, after)
                return took[0]
            assert time.monotonic() < deadline, "no worker counted the connection"
            time.sleep(0.02)

    def served_by_every_worker(self, name: str, timeout: float, *, misses: bool) -> None:
        """Connect until each worker has presented `name`'s certificate; with `misses` False,
        every connection must get it (the name was there before the workers started)."""
        serving: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(serving) < len(self.metrics_ports):
            assert time.monotonic() < deadline, f"{name}: served only by workers {serving}"
            worker, served = self.attempt(name)
            assert served or misses, f"worker {worker} did not serve {name}"
            if served:
                serving.add(worker)


@contextmanager
def running_edge(db_url: str, tmp_path: Path, root_pem: str) -> Iterator[RunningEdge]:
    http_port, https_port = free_port(), free_port()
    metrics_port = metrics_base_port({http_port, https_port})
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "database_url": db_url,
            "master_key": MASTER_KEY,
            "tracking_key": TRACKING_SECRET,
            "http_listen": f"127.0.0.1:{http_port}",
            "https_listen": f"127.0.0.1:{https_port}",
            "metrics_listen": f"127.0.0.1:{metrics_port}",
        }
    )
    process = Process(
        "edge", settings_env(settings), tmp_path, "edge", "--processes", str(PROCESSES)
    )
    edge = RunningEdge(
        process,
        https_port,
        [metrics_port + index for index in range(PROCESSES)],
        root_pem,
    )
    try:
        edge.wait_until_all_serve()
        yield edge
    finally:
        process.stop()


def test_every_process_serves_the_loaded_and_the_new_certificates_and_writes_its_clicks(
    db_url: str, tmp_path: Path, ca: ThrowawayCA
) -> None:
    store = Store(db_url)
    store.migrate()
    serve_certificate(store, ca, "before.pool.test")
    with running_edge(db_url, tmp_path, pem(ca.root).decode()) as edge:
        assert len(child_pids(edge.process.popen.pid)) == PROCESSES
        # Loaded by the parent before it forked: every worker has it from its first handshake.
        edge.served_by_every_worker("before.pool.test", timeout=30, misses=False)

        # Stored while they run: each worker's feed loads it on its own within seconds.
        serve_certificate(store, ca, "after.pool.test")
        edge.served_by_every_worker("after.pool.test", timeout=15, misses=True)

        # A worker that dies is forked again from the parent, whose cache is the load from
        # before "after.pool.test" was stored: the new worker's feed must catch up.
        victim = child_pids(edge.process.popen.pid)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while victim in (pids := child_pids(edge.process.popen.pid)) or len(pids) < PROCESSES:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        edge.wait_until_all_serve()
        edge.served_by_every_worker("after.pool.test", timeout=15, misses=True)

        # Clicks recorded by every worker are all written when SIGTERM stops them (the last
        # ones within their batch delay: only the stop writes those).
        key = tracking_key_from_secret(TRACKING_SECRET)
        token = make_token(key, "before.pool.test", 7, "https://shop.example/spring")
        clicked = 0
        while clicked < 6 or 0 in edge.counts(CLICKS):
            assert clicked < 200, f"clicks by worker: {edge.counts(CLICKS)}"
            status, headers, _ = https_get(
                edge.https_port, "before.pool.test", f"/c/{token}", edge.root_pem
            )
            assert (status, headers["location"]) == (302, "https://shop.example/spring")
            clicked += 1
        code = edge.process.stop()
    output = edge.process.output()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(LinkEvent)) == clicked
    store.close()


def _connect(
    edge: RunningEdge, context: ssl.SSLContext, name: str, session: ssl.SSLSession | None
) -> ssl.SSLSession:
    request = f"GET /healthz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()
    with (
        socket.create_connection(("127.0.0.1", edge.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name, session=session) as tls,
    ):
        tls.sendall(request)
        while tls.recv(65536):  # TLS 1.3 tickets come after the handshake, with the answer
            pass
        assert tls.session is not None
        if session is not None:
            assert tls.session_reused, "a session ticket was not accepted"
        return tls.session


def test_a_session_ticket_from_one_process_resumes_on_every_other(
    db_url: str, tmp_path: Path, ca: ThrowawayCA
) -> None:
    store = Store(db_url)
    store.migrate()
    serve_certificate(store, ca, "tickets.pool.test")
    ensure_ticket_keys(store, MasterKeys.parse(MASTER_KEY))  # a worker's part
    with running_edge(db_url, tmp_path, pem(ca.root).decode()) as edge:
        context = ssl.create_default_context(cadata=edge.root_pem)
        session = _connect(edge, context, "tickets.pool.test", None)
        assert session.has_ticket
        resumed_on: set[int] = set()
        deadline = time.monotonic() + 30
        while len(resumed_on) < PROCESSES:
            assert time.monotonic() < deadline, f"resumed only on workers {resumed_on}"
            resumed_on.add(
                edge.worker_taking(lambda: _connect(edge, context, "tickets.pool.test", session))
            )
    store.close()


def test_each_process_gets_its_own_metrics_port() -> None:
    settings = Settings(metrics_listen="127.0.0.1:9464")
    assert [worker_settings(settings, i).metrics_listen for i in range(3)] == [
        "127.0.0.1:9464",
        "127.0.0.1:9465",
        "127.0.0.1:9466",
    ]
    assert worker_settings(Settings(metrics_listen="[::1]:9464"), 1).metrics_listen == "[::1]:9465"
    assert worker_settings(Settings(metrics_listen="127.0.0.1:0"), 1).metrics_listen == (
        "127.0.0.1:0"
    )
    assert worker_settings(Settings(), 1).metrics_listen is None
