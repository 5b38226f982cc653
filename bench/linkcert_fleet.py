"""linkcert in fleet mode for the benchmarks: `linkcert edge` and `linkcert worker` processes.

The wave of domains is released in one transaction, as if that many customers had saved their
tracking domain at the same instant, and the workers are told at once (NOTIFY). Progress is
read from the store; when orders reached the CA is read from the workers' logs.
"""

from __future__ import annotations

import functools
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from bench.lab import Child, Loopback, linkcert_child, wait_until
from linkcert.config import Settings
from linkcert.domains import record_event
from linkcert.hostport import parse_host_port
from linkcert.names import NamePolicy, validate
from linkcert.states import CertState, DnsState
from linkcert.store import Account, Domain, Store, signals, utcnow
from linkcert.testbed.environment import settings_env

POLICY = NamePolicy(allow_test_domains=True)
READY_TIMEOUT = 60.0
# An order at the CA, as the ACME client logs it (asctime has milliseconds).
_ORDER_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO linkcert\.acme\.client ACME order for "
)


@dataclass
class Fleet:
    """One edge and some workers sharing a store; every child is stopped by `stop`."""

    settings: Settings
    log_dir: Path
    workers: list[Child] = field(default_factory=list)
    edge: Child | None = None

    def start_edge(self) -> None:
        env = settings_env(self.settings)
        self.edge = linkcert_child("edge", env, self.log_dir, "edge")
        host, port = parse_host_port(self.settings.http_listen)
        wait_until(lambda: _accepts(host, port), READY_TIMEOUT, what="the edge's HTTP port")

    def start_workers(self, count: int, tag: str = "", **extra: str) -> None:
        env = settings_env(self.settings, **extra)
        started = [
            linkcert_child("worker", env, self.log_dir, f"worker{tag}-{i}") for i in range(count)
        ]
        self.workers += started
        for child in started:
            wait_until(
                functools.partial(_started, child),
                READY_TIMEOUT,
                what=f"{child.log_path.name} to start",
            )
            if not child.running:
                raise RuntimeError(f"{child.log_path} exited:\n{child.output()[-2000:]}")

    def stop_workers(self) -> None:
        for child in self.workers:
            child.stop()

    def stop(self) -> None:
        """Stop every child (workers first: they may still need the edge's answers)."""
        for child in [*self.workers, *([self.edge] if self.edge else [])]:
            child.stop()

    def order_times(self) -> list[datetime]:
        """When each order was placed at the CA, from every worker's log, sorted."""
        times: list[datetime] = []
        for child in self.workers:
            for line in child.output().splitlines():
                match = _ORDER_LINE.match(line)
                if match:
                    times.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f"))
        return sorted(times)

    def log_count(self, text: str) -> int:
        return sum(child.output().count(text) for child in self.workers)


def _started(child: Child) -> bool:
    return "worker started" in child.output() or not child.running


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wave_names(count: int, label: str) -> list[str]:
    """Distinct names, each under its own registered domain (as customers' are)."""
    return [f"links.{label}{i:05d}.test" for i in range(count)]


def release_wave(store: Store, names: Sequence[str]) -> None:
    """Save every name as a customer's tracking domain, all in one transaction.

    The rows are what `set_tracking_domain` writes, one account each; one transaction, so that
    the whole wave becomes due at the same instant.
    """
    now = utcnow()
    with store.session() as session:
        domains: list[Domain] = []
        for i, raw in enumerate(names):
            valid = validate(raw, POLICY)
            account = Account(name=f"customer-{i:05d}", contact_emails=[], created_at=now)
            domain = Domain(
                name=valid.ascii,
                unicode_name=valid.unicode,
                registrable=valid.registrable,
                account=account,
                dns_state=DnsState.PENDING,
                cert_state=CertState.NONE,
                problems=[],
                attempts=0,
                wanted=True,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add_all([account, domain])
            domains.append(domain)
        session.flush()
        for domain in domains:
            assert domain.account is not None
            domain.account.tracking_domain_id = domain.id
            record_event(session, domain, "saved", f"{domain.name} was saved.")
        signals.announce(session, signals.WORK, "")


def secured_count(store: Store) -> int:
    with store.session() as session:
        value = session.scalar(
            select(func.count()).select_from(Domain).where(Domain.cert_state == CertState.ACTIVE)
        )
    return int(value or 0)


@dataclass(frozen=True)
class Progress:
    done: int
    elapsed: float  # seconds from release to the last certificate (or to the timeout)
    timeline: list[tuple[float, int]]  # (seconds since release, certificates so far)


def follow(
    store: Store,
    target: int,
    released: float,
    timeout: float,
    count: Callable[[Store], int] = secured_count,
) -> Progress:
    """Poll `count` until it reaches `target` or `timeout` seconds have passed since `released`
    (a `time.monotonic()` value)."""
    timeline: list[tuple[float, int]] = []
    done = 0
    deadline = released + timeout
    while time.monotonic() < deadline:
        done = count(store)
        timeline.append((time.monotonic() - released, done))
        if done >= target:
            break
        time.sleep(0.25)
    return Progress(done, timeline[-1][0] if timeline else 0.0, timeline)


def fleet_for(loopback: Loopback, database_url: str, workdir: Path, **settings: object) -> Fleet:
    return Fleet(loopback.settings(database_url, workdir, **settings), workdir)
