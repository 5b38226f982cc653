"""Benchmark of provisioning in fleet mode against the peer, Caddy with on-demand TLS.

    python -m bench.fleet [--domains 1000] [--caddy-names 100] [--caddy-concurrency 20]

One Pebble (and one loopback DNS server) serves both sides, one after the other, on the same
validation ports:

1. linkcert: two `linkcert worker` processes and one `linkcert edge` on PostgreSQL (a schema of
   our own). A wave of `--domains` new tracking domains is saved in one transaction; the clock
   runs from that commit until the last certificate is stored. No client-side rate limits: the
   figure is what the fleet can do, as Pebble has no limits of its own either.
2. Caddy (Debian's `caddy`) with the shared Caddyfile (`../shared/bench/caddy-peer.Caddyfile`):
   on-demand TLS, so a certificate is obtained at the first handshake for a name. Handshakes
   for `--caddy-names` new names, at most `--caddy-concurrency` at a time; the clock runs from
   the first handshake until the last one completes with a valid certificate (after one name
   off the clock, which registers Caddy's ACME account).

Both rates are certificates per minute; the ratio is linkcert's over Caddy's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.server
import os
import platform
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from bench import lab
from bench.linkcert_fleet import Fleet, follow, release_wave, wave_names
from linkcert.store import Store

REPO = Path(__file__).resolve().parents[1]
CADDYFILE = REPO.parent / "shared" / "bench" / "caddy-peer.Caddyfile"
HANDSHAKE_TIMEOUT = 120.0  # Caddy holds the handshake while it obtains the certificate
HANDSHAKE_ATTEMPTS = 3


@dataclass(frozen=True)
class Rate:
    certificates: int
    seconds: float
    cpu: dict[str, float]

    @property
    def per_minute(self) -> float:
        return self.certificates / self.seconds * 60 if self.seconds > 0 else 0.0


# --- linkcert ------------------------------------------------------------------------------


def run_linkcert(
    loopback: lab.Loopback, database_url: str, workdir: Path, domains: int, concurrency: int
) -> Rate:
    store = Store(database_url)
    store.migrate()
    names = wave_names(domains, "shop")
    for name in names:
        loopback.point(name)
    fleet = Fleet(loopback.settings(database_url, workdir, worker_concurrency=concurrency), workdir)
    try:
        fleet.start_edge()
        fleet.start_workers(2)
        cpu_before = _cpu(fleet, loopback)
        release_wave(store, names)
        released = time.monotonic()
        progress = follow(store, domains, released, timeout=max(300.0, domains * 1.0))
        cpu = {k: v - cpu_before.get(k, 0.0) for k, v in _cpu(fleet, loopback).items()}
    finally:
        fleet.stop()
        store.close()
    if progress.done < domains:
        print(f"linkcert: only {progress.done} of {domains} secured in {progress.elapsed:.0f} s")
    orders = loopback.pebble.orders_created()
    print(
        f"  Pebble orders so far: {orders}; rateLimited in worker logs: "
        f"{fleet.log_count('rateLimited')}"
    )
    return Rate(progress.done, progress.elapsed, cpu)


def _cpu(fleet: Fleet, loopback: lab.Loopback) -> dict[str, float]:
    usage = {
        child.log_path.stem: lab.cpu_seconds(child.popen.pid)
        for child in [*fleet.workers, *([fleet.edge] if fleet.edge else [])]
    }
    usage["pebble"] = sum(
        lab.cpu_seconds(pid) for pid in lab.pids_running(str(loopback.pebble.config_path))
    )
    return usage


# --- Caddy ---------------------------------------------------------------------------------


class _AskHandler(http.server.BaseHTTPRequestHandler):
    """Caddy's `ask` endpoint: 200 for the names of the wave, 404 for anything else."""

    allowed: frozenset[str] = frozenset()

    def do_GET(self) -> None:
        name = parse_qs(urlsplit(self.path).query).get("domain", [""])[0]
        self.send_response(200 if name in self.allowed else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: one line per name is noise here


@contextlib.contextmanager
def ask_server(names: list[str]) -> Iterator[str]:
    handler = type("Ask", (_AskHandler,), {"allowed": frozenset(names)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ask"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def start_caddy(loopback: lab.Loopback, ask_url: str, workdir: Path) -> lab.Child:
    if not CADDYFILE.exists():
        raise SystemExit(f"the peer's Caddyfile is missing: {CADDYFILE}")
    home = workdir / "caddy-home"
    storage = workdir / "caddy-storage"
    home.mkdir()
    storage.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # Caddy keeps its own state under HOME/XDG: a throwaway place, not the user's.
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "ACME_DIRECTORY": loopback.pebble.directory_url,
        "ACME_CA_ROOT": str(loopback.pebble.ca_bundle_path),
        "HTTP_PORT": str(loopback.http_port),
        "HTTPS_PORT": str(loopback.tls_port),
        "CADDY_STORAGE": str(storage),
        "ASK_URL": ask_url,
    }
    command = ["caddy", "run", "--adapter", "caddyfile", "--config", str(CADDYFILE)]
    caddy = lab.Child(command, env, workdir / "caddy.log", cwd=workdir)
    lab.wait_until(
        lambda: _accepts(loopback.tls_port) or not caddy.running, 30, what="Caddy to listen"
    )
    if not caddy.running:
        raise RuntimeError(f"Caddy exited:\n{caddy.output()[-2000:]}")
    return caddy


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def handshake(port: int, name: str, root_pem: str) -> bool:
    """A TLS handshake with SNI `name` that verifies the certificate; True once it does."""
    context = ssl.create_default_context(cadata=root_pem)
    for _ in range(HANDSHAKE_ATTEMPTS):
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT) as raw,
                context.wrap_socket(raw, server_hostname=name),
            ):
                return True
        except (OSError, ssl.SSLError):
            time.sleep(0.5)
    return False


def run_caddy(loopback: lab.Loopback, workdir: Path, count: int, concurrency: int) -> Rate:
    names = wave_names(count, "caddy")
    warmup = "links.caddy-warmup.test"
    for name in [warmup, *names]:
        loopback.point(name)
    root = loopback.pebble.root_pem()
    with ask_server([warmup, *names]) as ask_url:
        caddy = start_caddy(loopback, ask_url, workdir)
        try:
            # One name first, off the clock: Caddy registers its ACME account on its first
            # order, and many first handshakes at once race on the account file it writes.
            if not handshake(loopback.tls_port, warmup, root):
                raise RuntimeError(f"Caddy got no certificate for {warmup}: see {caddy.log_path}")
            cpu_before = lab.cpu_seconds(caddy.popen.pid)
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                results = list(pool.map(lambda n: handshake(loopback.tls_port, n, root), names))
            elapsed = time.monotonic() - started
            cpu = {"caddy": lab.cpu_seconds(caddy.popen.pid) - cpu_before}
        finally:
            caddy.stop()
    return Rate(sum(results), elapsed, cpu)


# --- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--domains", type=int, default=1000, help="linkcert's wave")
    parser.add_argument("--concurrency", type=int, default=32, help="worker_concurrency")
    parser.add_argument("--caddy-names", type=int, default=100, help="Caddy's wave")
    parser.add_argument("--caddy-concurrency", type=int, default=20, help="handshakes at once")
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    arguments = parser.parse_args()
    lab.exit_on_sigterm()
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}"
    )
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
        if not arguments.keep:
            stack.callback(lambda: __import__("shutil").rmtree(workdir, ignore_errors=True))
        else:
            print(f"logs in {workdir}")
        loopback = lab.Loopback(workdir)
        stack.callback(loopback.close)
        database_url = stack.enter_context(lab.postgres_schema("bench_fleet"))
        ours = run_linkcert(
            loopback, database_url, workdir, arguments.domains, arguments.concurrency
        )
        report("linkcert", ours, f"{arguments.domains} domains, 2 workers + 1 edge")
        peer = run_caddy(loopback, workdir, arguments.caddy_names, arguments.caddy_concurrency)
        report(
            "Caddy",
            peer,
            f"{arguments.caddy_names} names, {arguments.caddy_concurrency} handshakes at once",
        )
        if peer.per_minute > 0:
            print(f"ratio: linkcert / Caddy = {ours.per_minute / peer.per_minute:.1f}x")


def report(side: str, rate: Rate, what: str) -> None:
    cpu = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(rate.cpu.items()))
    print(
        f"{side}: {rate.certificates} certificates in {rate.seconds:.1f} s = "
        f"{rate.per_minute:,.0f} per minute ({what}); CPU: {cpu}",
        flush=True,
    )


if __name__ == "__main__":
    main()
