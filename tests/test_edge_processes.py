"""`linkcert edge --processes N`: certificates loaded once, N forked edge processes following the
store on their own, a dead one replaced, clicks written on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from linkcert.config import Settings
from linkcert.keys import MasterKeys
from linkcert.names import NamePolicy
from linkcert.service.edge_processes import worker_settings
from linkcert.store import LinkEvent, Store
from linkcert.ticketkeys import ensure_ticket_keys
from linkcert.tracking import make_token, tracking_key_from_secret
from tests.certs_support import ThrowawayCA, pem
from tests.e2e_support import TRACKING_SECRET, https_get
from tests.edge_processes_support import (
    CLICKS,
    MASTER_KEY,
    PROCESSES,
    RunningEdge,
    running_edge,
    serve_certificate,
)
from tests.fleet_support import child_pids

POLICY = NamePolicy(allow_test_domains=True)


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create("Edge Pool Test CA")


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
