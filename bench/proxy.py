"""linkcert's edge in proxy mode side by side with Caddy's on-demand TLS and reverse_proxy.

    python -m bench.proxy [--duration 10] [--rounds 3] [--edge-workers 2] [--connections 64]

One run, one machine, the same origin for both sides: Debian's nginx on loopback answering
every request with `return 302` (keep-alive towards the proxies). The same throwaway CA and
certificates for both sides (bench/edge_pki.py):

- linkcert: the edge pool as `linkcert edge --processes N` runs it (bench/edge_linkcert.py: the
  same EdgePool forking N edge processes on uvloop, certificates loaded before the fork) with
  `edge_mode = "proxy"` and the nginx origin as its only upstream;
- Caddy: the shared Caddyfile (../shared/bench/caddy-peer.Caddyfile, on-demand TLS, certificates
  found in its storage, session tickets off), its `respond` replaced by `reverse_proxy` to the
  same nginx (bench/edge_caddy.py).

`rounds` times, back to back (A B, then B A): wrk keep-alive requests and wrk with
`Connection: close` (a full TLS handshake per request, no resumption on either side). Each run
reports requests/s, p99 and requests per server CPU-second: the proxy's own CPU (its process
tree), never nginx's. The machine may be shared: the other load seen during the runs is shown.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.edge import LoadRun, Server, _load, paired_ratio
from bench.edge_caddy import CaddyPeer
from bench.edge_clients import verifying_context
from bench.edge_linkcert import LinkcertEdge
from bench.edge_pki import bench_names, make_pki
from bench.edge_proc import LOOPBACK, cpu_seconds_of_tree, stop, wait_for_port
from linkcert.testbed.waiting import free_port

LOCATION = "https://shop.example/spring-sale?utm_source=email"


class NginxOrigin:
    """nginx answering every request with a 302, from a directory of its own (no service)."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        user = "user root;" if os.geteuid() == 0 else ""
        config = run_dir / "nginx.conf"
        config.write_text(
            f"""
{user}
daemon off;
master_process on;
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {run_dir}/body;
    proxy_temp_path {run_dir}/proxy;
    fastcgi_temp_path {run_dir}/fastcgi;
    uwsgi_temp_path {run_dir}/uwsgi;
    scgi_temp_path {run_dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen {LOOPBACK}:{self.port};
        location / {{ return 302 {LOCATION}; }}
    }}
}}
"""
        )
        self.process = subprocess.Popen(
            ["nginx", "-c", str(config), "-p", str(run_dir), "-e", str(run_dir / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, self.process)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def close(self) -> None:
        stop(self.process)


def relayed(port: int, name: str, root_pem: Path) -> dict[str, str]:
    """One verified HTTPS request through a proxy: the answer must be nginx's redirect."""
    context = verifying_context(root_pem)
    connection = http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=10)
    # SNI and Host are the benchmark name; the connection goes to loopback.
    connection.sock = context.wrap_socket(
        socket.create_connection((LOOPBACK, port), timeout=10),
        server_hostname=name,
    )
    try:
        connection.request("GET", "/c/any-tracker-path", headers={"Host": name})
        response = connection.getresponse()
        response.read()
        headers = {key.lower(): value for key, value in response.getheaders()}
    finally:
        connection.close()
    if response.status != 302 or headers.get("location") != LOCATION:
        raise RuntimeError(f"port {port} did not relay nginx's answer: {response.status} {headers}")
    return headers


@dataclass
class Figures:
    label: str
    keep_alive: list[LoadRun] = field(default_factory=list)
    close: list[LoadRun] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    duration: float
    rounds: int
    connections: int
    close_connections: int
    edge_workers: int


def run(options: Options, work: Path, say: Callable[[str], None]) -> tuple[list[Figures], float]:
    name = bench_names(1)[0]
    say("creating a throwaway CA and a certificate")
    pki = make_pki(work / "pki", [name])
    origin = NginxOrigin(work / "nginx")
    servers: list[tuple[Figures, Server]] = []
    try:
        say(f"nginx origin on {origin.url}")
        linkcert = LinkcertEdge(
            work / "linkcert", pki, [name], workers=options.edge_workers, upstream=origin.url
        )
        servers.append((Figures("linkcert"), linkcert))
        caddy = CaddyPeer(work / "caddy", pki, [name], upstream=f"{LOOPBACK}:{origin.port}")
        servers.append((Figures("Caddy"), caddy))
        for figures, server in servers:
            headers = relayed(server.https_port, name, pki.root_pem)
            say(f"{figures.label} relays nginx's 302 (Via: {headers.get('via', '-')})")
        for round_number in range(options.rounds):
            order = servers if round_number % 2 == 0 else servers[::-1]
            for kind, close_each, connections in (
                ("keep-alive", False, options.connections),
                ("Connection: close", True, options.close_connections),
            ):
                for figures, server in order:
                    say(f"round {round_number + 1}: {figures.label} {kind}")
                    result = _load(
                        server,
                        name,
                        "/c/any-tracker-path",
                        connections=connections,
                        seconds=options.duration,
                        close_each=close_each,
                        script_dir=work,
                    )
                    (figures.close if close_each else figures.keep_alive).append(result)
                order = order[::-1]
        origin_cpu = cpu_seconds_of_tree(origin.process.pid)
    finally:
        for _, server in servers:
            server.close()
        origin.close()
    return [figures for figures, _ in servers], origin_cpu


def _median(runs: list[LoadRun], value: Callable[[LoadRun], float]) -> float:
    return statistics.median(value(run) for run in runs) if runs else 0.0


def table(figures: list[Figures]) -> str:
    ours, theirs = figures
    lines = [
        f"| | {ours.label} | {theirs.label} | {ours.label}/{theirs.label} |",
        "|---|---:|---:|---:|",
    ]
    measures: list[tuple[str, Callable[[LoadRun], float], str]] = [
        ("requests/s", lambda r: r.per_second, ""),
        ("  p99 latency", lambda r: r.p99_ms, " ms"),
        ("  requests per server CPU-second", lambda r: r.per_server_cpu_second, ""),
    ]
    kinds: list[tuple[str, list[LoadRun], list[LoadRun]]] = [
        ("keep-alive", ours.keep_alive, theirs.keep_alive),
        ("Connection: close (a handshake per request)", ours.close, theirs.close),
    ]
    for kind, my_runs, peer_runs in kinds:
        for label, value, unit in measures:
            if label == "requests/s":
                label = f"{kind}: {label}"
            mine_f = _median(my_runs, value)
            peer_f = _median(peer_runs, value)
            decimals = 2 if unit else 0
            ratio = f"{mine_f / peer_f:.2f}×" if peer_f else "n/a"
            lines.append(
                f"| {label} | {mine_f:,.{decimals}f}{unit} | {peer_f:,.{decimals}f}{unit} "
                f"| {ratio} |"
            )
        mine_errors = sum(r.errors for r in my_runs)
        peer_errors = sum(r.errors for r in peer_runs)
        lines.append(f"|   errors (all runs) | {mine_errors} | {peer_errors} | |")
    runs = [run for side in figures for run in (*side.keep_alive, *side.close)]
    background = statistics.median(run.other_cpu_s / run.seconds for run in runs) if runs else 0
    lines.append("")
    lines.append(
        f"Ratios within each round (median): keep-alive requests/s "
        f"{paired_ratio(ours.keep_alive, theirs.keep_alive):.2f}×, Connection: close "
        f"{paired_ratio(ours.close, theirs.close):.2f}×. Other load on the machine during the "
        f"runs (median, nginx and wrk included): {background:.2f} cores."
    )
    return "\n".join(lines)


def details(figures: list[Figures]) -> str:
    lines = []
    for side in figures:
        for kind, runs in (("keep-alive", side.keep_alive), ("close", side.close)):
            for run in runs:
                lines.append(
                    f"{side.label} {kind}: {run.per_second:,.0f}/s p99 {run.p99_ms:.1f} ms, "
                    f"errors {run.errors}, CPU-s server {run.server_cpu_s:.1f} "
                    f"wrk {run.wrk_cpu_s:.1f} other {run.other_cpu_s:.1f} in {run.seconds:.1f}s"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="linkcert's proxy mode side by side with Caddy's reverse_proxy (see "
        "bench/RESULTS.md)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3, help="load runs per side and kind")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c, keep-alive runs")
    parser.add_argument(
        "--close-connections", type=int, default=64, help="wrk -c, Connection: close runs"
    )
    parser.add_argument("--edge-workers", type=int, default=2, help="linkcert edge processes")
    args = parser.parse_args(argv)
    for tool in ("caddy", "wrk", "nginx"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian package {tool})")
    options = Options(
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        close_connections=args.close_connections,
        edge_workers=args.edge_workers,
    )

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    try:
        figures, origin_cpu = run(options, work, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"proxy benchmark, {datetime.date.today()}, {platform.node()}, {os.cpu_count()} CPUs; "
        f"origin nginx `return 302` on loopback; wrk -t1 -c{options.connections} "
        f"(close: -c{options.close_connections}), {options.duration:g}s x {options.rounds} "
        f"rounds; linkcert edge: {options.edge_workers} processes, edge_mode proxy\n"
    )
    print(table(figures))
    print()
    print(details(figures))
    print(f"nginx (origin, not counted) used {origin_cpu:.1f} CPU-s over the whole run")


if __name__ == "__main__":
    main()
