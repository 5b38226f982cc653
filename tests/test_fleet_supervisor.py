"""`linkcert serve --workers N --edges M`: a supervised one-machine fleet on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkcert.domains import create_account, domain_status, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.store import Store
from linkcert.testbed.environment import settings_env
from linkcert.testbed.waiting import wait_for
from tests.e2e_support import Platform, start_platform
from tests.fleet_support import child_pids


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    world = start_platform(tmp_path_factory.mktemp("pebble"))
    yield world
    world.pebble.stop()
    world.dns.stop()


def children_by_role(pid: int) -> dict[str, list[int]]:
    """The supervisor's child processes by role (`linkcert ROLE ...`), read from /proc."""
    found: dict[str, list[int]] = {}
    for child in child_pids(pid):
        try:
            argv = [a for a in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0") if a]
        except FileNotFoundError:
            continue  # it just exited
        if b"linkcert" in argv:
            found.setdefault(argv[argv.index(b"linkcert") + 1].decode(), []).append(child)
    return found


def test_the_supervisor_runs_restarts_and_stops_its_fleet(
    platform: Platform, postgres_url: str, tmp_path: Path
) -> None:
    store = Store(postgres_url)
    store.migrate()
    env = settings_env(platform.settings(postgres_url, tmp_path))
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "linkcert", "serve", "--workers", "2", "--edges", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # --edges 2: one edge child, which forks the two edge processes.
        wait_for(
            lambda: (
                {k: len(v) for k, v in children_by_role(serve.pid).items()}
                == {"worker": 2, "edge": 1, "api": 1}
            ),
            timeout=30,
        )
        (edge,) = children_by_role(serve.pid)["edge"]
        wait_for(lambda: len(child_pids(edge)) == 2, timeout=30)
        domain = "links.supervised.test"
        platform.point(domain)
        create_account(store, "supervised")
        set_tracking_domain(store, "supervised", domain, NamePolicy(allow_test_domains=True))
        wait_for(lambda: domain_status(store, domain).cert_state == "active", timeout=60)

        # An edge process that dies is forked again by its parent...
        victim = child_pids(edge)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(child_pids(edge)) == 2 and victim not in child_pids(edge), timeout=30)
        # ...and an edge parent that dies is started again by the supervisor, with its own.
        os.kill(edge, signal.SIGKILL)
        wait_for(
            lambda: (
                len(children_by_role(serve.pid).get("edge", [])) == 1
                and edge not in children_by_role(serve.pid)["edge"]
            ),
            timeout=30,
        )
        (edge,) = children_by_role(serve.pid)["edge"]
        wait_for(lambda: len(child_pids(edge)) == 2, timeout=30)
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
    store.close()
