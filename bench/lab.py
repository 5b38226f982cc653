"""The loopback lab the benchmarks run in: a PostgreSQL schema, DNS, Pebble, child processes.

Everything here is started inside a `contextlib.ExitStack` by the caller, so that every child
process is stopped and every schema dropped on the way out, also when a run fails or is
interrupted (Ctrl-C raises KeyboardInterrupt, SIGTERM is turned into SystemExit).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import IO, Any

from sqlalchemy import create_engine, text

from linkcert.config import Settings
from linkcert.keys import generate_master_key
from linkcert.testbed.localdns import LocalDNSServer
from linkcert.testbed.pebble import PebbleServer
from linkcert.testbed.waiting import free_port

POSTGRES_URL = os.environ.get(
    "LINKCERT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
EDGE_TARGET = "edge.platform.test"
TRACKING_SECRET = "bench-tracking-" + "k" * 40
STOP_TIMEOUT = 30.0


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind the stack like Ctrl-C, so that `finally` blocks stop children."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, handler)


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A database URL whose search_path is a new schema of ours, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, pool_pre_ping=True)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        # Our own connections may still hold locks for a moment: retry, bounded.
        for attempt in range(5):
            try:
                with admin.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                break
            except Exception:
                if attempt == 4:
                    print(f"warning: could not drop schema {schema}", file=sys.stderr)
                time.sleep(1)
        admin.dispose()


class Loopback:
    """A DNS server holding the customers' CNAMEs and a Pebble validating through it.

    Pebble's HTTP-01 validator connects to `http_port` on 127.0.0.1 (where the edge, or Caddy,
    listens) and its TLS-ALPN-01 validator to `tls_port`.
    """

    def __init__(self, workdir: Path, certificate_validity_seconds: int | None = None) -> None:
        self.dns = LocalDNSServer().start()
        self.dns.add(EDGE_TARGET, "A", "127.0.0.1")
        self.http_port = free_port()
        self.tls_port = free_port()
        self.pebble = PebbleServer(
            http_port=self.http_port,
            tls_port=self.tls_port,
            dns_server=self.dns.nameserver,
            workdir=workdir / "pebble",
            certificate_validity_seconds=certificate_validity_seconds,
        )
        try:
            self.pebble.start()
        except BaseException:
            self.dns.stop()
            raise
        self.master_key = generate_master_key("bench")

    def point(self, name: str) -> None:
        """The customer's CNAME to the platform."""
        self.dns.add(name, "CNAME", EDGE_TARGET + ".")

    def settings(self, database_url: str, data_dir: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": data_dir,
            "database_url": database_url,
            "acme_directory_url": self.pebble.directory_url,
            "acme_ca_bundle": self.pebble.ca_bundle_path,
            "nameservers": (self.dns.nameserver,),
            "cname_targets": (EDGE_TARGET,),
            "allow_test_domains": True,
            "http_listen": f"127.0.0.1:{self.http_port}",
            "https_listen": f"127.0.0.1:{free_port()}",
            "api_listen": "127.0.0.1:0",
            "master_key": self.master_key,
            "tracking_key": TRACKING_SECRET,
            "dns_timeout": 2.0,
        }
        values.update(overrides)
        return Settings.model_validate(values)

    def close(self) -> None:
        try:
            self.pebble.stop()
        finally:
            self.dns.stop()


class Child:
    """One child process in a session of its own, its output in a log file.

    Its own session (process group), so that `stop` also reaches anything it started.
    """

    def __init__(
        self, command: list[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit status."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._log.close()
        return self.popen.returncode

    def _signal(self, sig: signal.Signals) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def linkcert_child(role: str, env: Mapping[str, str], log_dir: Path, name: str) -> Child:
    return Child([sys.executable, "-m", "linkcert", role], env, log_dir / f"{name}.log")


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.2, what: str = ""
) -> None:
    """Poll `predicate` until true; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what or 'condition'} not met within {timeout:g} s")
        time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_running(argument: str) -> list[int]:
    """The processes whose command line contains `argument` (e.g. our Pebble's config path)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if argument in command:
            found.append(int(entry.name))
    return found
