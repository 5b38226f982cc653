"""Fleet mode on PostgreSQL: two workers and two edges share one database.

Every certificate is issued exactly once, a worker killed with SIGKILL mid-order has its
domains finished by the other, every edge serves every certificate, and a PostgreSQL restart
in the middle loses nothing.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from linkcert.domains import create_account, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.store import Certificate, Domain, Order, Store
from linkcert.testbed.environment import settings_env
from linkcert.testbed.waiting import free_port, wait_for_async
from tests.e2e_support import Platform, served_serial, start_platform
from tests.fleet_support import Process

POLICY = NamePolicy(allow_test_domains=True)
DOMAINS = 200


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    world = start_platform(tmp_path_factory.mktemp("pebble"))
    yield world
    world.pebble.stop()
    world.dns.stop()


def restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
        capture_output=True,
    )


def count(store: Store, model: type[Certificate] | type[Order]) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def secured(store: Store) -> int:
    try:
        with store.session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Domain)
                    .where(Domain.current_certificate_id.is_not(None))
                )
                or 0
            )
    except Exception:
        return -1  # PostgreSQL restarting


async def test_two_workers_two_edges_two_hundred_domains(
    platform: Platform, postgres_url: str, tmp_path: Path
) -> None:
    store = Store(postgres_url)
    store.migrate()
    names = [f"l{i}.fleet{i % 7}.test" for i in range(DOMAINS)]
    for name in names:
        platform.point(name)
    create_account(store, "fleet")
    settings = platform.settings(
        postgres_url, tmp_path, worker_lease_seconds=10, worker_concurrency=16
    )
    base = settings_env(settings)
    https_ports = [free_port(), free_port()]
    edges = [
        Process("edge", {**base, "LINKCERT_HTTPS_LISTEN": f"127.0.0.1:{port}"}, tmp_path, f"e{i}")
        for i, port in enumerate(https_ports)
    ]
    workers = [Process("worker", base, tmp_path, f"w{i}") for i in range(2)]
    processes = edges + workers
    try:
        for i, name in enumerate(names):
            # Separate accounts: one tracking domain each, as customers have.
            account = "fleet" if i == 0 else create_account(store, f"fleet-{i}").name
            set_tracking_domain(store, account, name, POLICY)
        # Kill one worker mid-wave, with orders in flight.
        await wait_for_async(lambda: secured(store) >= 30, timeout=120)
        workers[0].kill()
        restart_postgres()
        await wait_for_async(lambda: secured(store) == DOMAINS, timeout=240, interval=0.5)
    finally:
        codes = {p.log_path.name: p.stop() for p in processes}
    # Exactly once: one certificate per domain in the store and at the CA.
    assert count(store, Certificate) == DOMAINS
    issued = re.findall(
        r"Issued certificate serial \w+ for order (\S+)", platform.pebble.read_log()
    )
    with store.session() as session:
        orders_per_domain = Counter(
            session.scalars(select(Order.domain_id).where(Order.url.is_not(None)))
        )
    ordered_twice = {d: n for d, n in orders_per_domain.items() if n > 1}
    assert len(issued) == DOMAINS, ordered_twice
    with store.session() as session:
        valid_orders = session.scalar(
            select(func.count()).select_from(Order).where(Order.status == "valid")
        )
    assert valid_orders == DOMAINS
    # The surviving processes stopped cleanly.
    assert codes["e0.log"] == 0 and codes["e1.log"] == 0 and codes["w1.log"] == 0, codes
    store.close()


async def test_every_edge_serves_every_certificate(
    platform: Platform, postgres_url: str, tmp_path: Path
) -> None:
    store = Store(postgres_url)
    store.migrate()
    names = [f"e{i}.edges.test" for i in range(20)]
    for name in names:
        platform.point(name)
    settings = platform.settings(postgres_url, tmp_path)
    base = settings_env(settings)
    https_ports = [free_port(), free_port()]
    edges = [
        Process("edge", {**base, "LINKCERT_HTTPS_LISTEN": f"127.0.0.1:{port}"}, tmp_path, f"e{i}")
        for i, port in enumerate(https_ports)
    ]
    worker = Process("worker", base, tmp_path, "w")
    root = platform.pebble.root_pem()
    try:
        for i, name in enumerate(names):
            create_account(store, f"edges-{i}")
            set_tracking_domain(store, f"edges-{i}", name, POLICY)
        await wait_for_async(lambda: secured(store) == len(names), timeout=120)
        for port in https_ports:
            for name in names:
                await wait_for_async(_serving(port, name, root), timeout=10)
    finally:
        for process in (*edges, worker):
            process.stop()
    store.close()


def _serving(port: int, name: str, root: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return served_serial(port, name, root) > 0
        except (OSError, ssl.SSLError):
            return False

    return check
