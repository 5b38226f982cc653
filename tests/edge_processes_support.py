"""What the tests of `linkcert edge --processes N` share with the click and event tests:
an edge run as its own process tree on a throwaway store, and a certificate to serve."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from linkcert.config import Settings
from linkcert.domains import create_account, set_tracking_domain
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.names import NamePolicy
from linkcert.store import Domain, Store
from linkcert.testbed.environment import settings_env
from linkcert.testbed.waiting import free_port
from linkcert.uploads import check_upload, store_upload
from tests.certs_support import ThrowawayCA
from tests.e2e_support import TRACKING_SECRET, served_serial
from tests.fleet_support import Process
from tests.ownership_support import prove

POLICY = NamePolicy(allow_test_domains=True)
MASTER_KEY = generate_master_key("pool")
PROCESSES = 2


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
