"""The edge with a million certificates in its store: start, memory, first and steady handshakes.

    python -m bench.million_fixture --n 1000000            # once: database linkcert_million
    python -m bench.million_edge --database linkcert_million [--processes 2] [--caddy 100000]

Runs `linkcert edge --processes N` (the command operators run) on the fixture's store
(bench/million_fixture.py) and measures, with the fixture's CA trusted and every name checked:
- start: from launching the command until sampled names (the first, the last, random ones) all
  complete a verified handshake, and PSS (summed over the edge's processes, from
  /proc/PID/smaps_rollup) at that moment and at its highest while starting;
- first handshake of names nobody has asked for since start, one at a time: client-side time
  to a verified handshake, and the same names again right after;
- steady full handshakes for `--duration` seconds from a client in its own process, names
  drawn from a Zipf distribution (rank r with weight 1/r^s: a few hot names, a long tail),
  `--concurrency` connections at a time, no resumption; handshakes/s and per server CPU-second;
- PSS after all that.
With `--caddy K`, the same CA's certificates for K of the names are written to Caddy's file
storage (bench/edge_caddy.py's layout, the shared Caddyfile's on-demand TLS) and Caddy's start,
first handshakes and memory are measured the same way.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import million_fixture
from bench.edge_proc import LOOPBACK, cpu_seconds_of_tree, memory_of_tree, stop
from linkcert.testbed.waiting import free_port

MIB = 1024 * 1024


@dataclass
class EdgeFigures:
    side: str
    names: int
    start_seconds: float = 0.0
    start_cpu_seconds: float = 0.0
    pss_at_start: int = 0
    pss_peak_starting: int = 0
    rss_at_start: int = 0
    first_handshake_ms: dict[str, float] = field(default_factory=dict)
    again_handshake_ms: dict[str, float] = field(default_factory=dict)
    first_failures: int = 0
    steady: dict[str, float] = field(default_factory=dict)
    pss_after: int = 0
    rss_after: int = 0
    processes: int = 0
    pss_held: int = 0
    held_seconds: int = 0


def client_context(root_pem: Path | None) -> ssl.SSLContext:
    if root_pem is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(root_pem))
    context.set_alpn_protocols(["http/1.1"])
    return context


def handshake(port: int, name: str, context: ssl.SSLContext, timeout: float = 30.0) -> float:
    """Seconds to a complete (verified, with a verifying context) handshake for `name`."""
    started = time.perf_counter()
    with (
        socket.create_connection((LOOPBACK, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=name),
    ):
        return time.perf_counter() - started


def _summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    if not ordered:
        return {}

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)

    return {
        "median": round(statistics.median(ordered) * 1000, 2),
        "p90": at(0.9),
        "p99": at(0.99),
        "max": round(ordered[-1] * 1000, 2),
        "count": len(ordered),
    }


def wait_serving(
    pid_of: Callable[[], int],
    process: subprocess.Popen[bytes],
    port: int,
    names: Sequence[str],
    context: ssl.SSLContext,
    figures: EdgeFigures,
    started: float,
    timeout: float,
) -> None:
    """Until every one of `names` completes a verified handshake; samples PSS meanwhile."""
    pending = list(names)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"{figures.side} exited with status {process.returncode}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{figures.side} did not serve {pending[0]} in {timeout:.0f} s")
        figures.pss_peak_starting = max(figures.pss_peak_starting, memory_of_tree(pid_of()).pss)
        try:
            handshake(port, pending[0], context, timeout=5.0)
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
            continue
        pending.pop(0)
    figures.start_seconds = round(time.monotonic() - started, 2)
    figures.start_cpu_seconds = round(cpu_seconds_of_tree(pid_of()), 2)
    memory = memory_of_tree(pid_of())
    figures.pss_at_start, figures.rss_at_start = memory.pss, memory.rss
    figures.processes = memory.processes


def first_handshakes(
    port: int, names: Sequence[str], context: ssl.SSLContext, figures: EdgeFigures
) -> None:
    first: list[float] = []
    for name in names:
        try:
            first.append(handshake(port, name, context))
        except (OSError, ssl.SSLError):
            figures.first_failures += 1
    again = [handshake(port, name, context) for name in names[:50]]
    figures.first_handshake_ms = _summary_ms(first)
    figures.again_handshake_ms = _summary_ms(again)


# --- the skewed handshake load ---------------------------------------------------------------


class Zipf:
    """Domain numbers 1..n drawn with weight 1/rank^s, ranks scattered over the numbers."""

    def __init__(self, n: int, s: float, seed: int = 1) -> None:
        self.n = n
        weights = (1.0 / float(rank) ** s for rank in range(1, n + 1))
        self._cumulative: list[float] = list(itertools.accumulate(weights))
        self._random = random.Random(seed)
        # A multiplier coprime with n spreads the ranks over the ids.
        step = 1_000_003
        while _gcd(step, n) != 1:
            step += 2
        self._step = step

    def draw(self, k: int) -> list[int]:
        ranks = self._random.choices(range(self.n), cum_weights=self._cumulative, k=k)
        return [(rank * self._step) % self.n + 1 for rank in ranks]

    def share_of_top(self, top: int) -> float:
        return self._cumulative[top - 1] / self._cumulative[-1]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _load(port: int, names: list[str], concurrency: int, duration: float) -> dict[str, float]:
    """`concurrency` threads, each doing one full handshake after another (OpenSSL releases the
    GIL while it computes, so the threads' handshakes overlap)."""
    context = client_context(None)
    counts = [0, 0]  # handshakes, failures
    deadline = time.monotonic() + duration
    cursor = itertools.cycle(names)
    lock = threading.Lock()

    def one_client() -> None:
        done = failed = 0
        while time.monotonic() < deadline:
            with lock:
                name = next(cursor)
            try:
                handshake(port, name, context, timeout=10.0)
            except (OSError, ssl.SSLError):
                failed += 1
                continue
            done += 1
        with lock:
            counts[0] += done
            counts[1] += failed

    started = time.monotonic()
    threads = [threading.Thread(target=one_client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {"handshakes": counts[0], "failures": counts[1], "seconds": round(elapsed, 2)}


def client_main(argv: Sequence[str]) -> None:
    """The load client, in its own process: `client PORT NAMES_FILE CONCURRENCY DURATION`."""
    port, names_file, concurrency, duration = argv
    names = Path(names_file).read_text().split()
    print(json.dumps(_load(int(port), names, int(concurrency), float(duration))))


def steady_load(
    pid: int, port: int, names: list[str], concurrency: int, duration: float, run_dir: Path
) -> dict[str, float]:
    names_file = run_dir / "zipf-names.txt"
    names_file.write_text("\n".join(names))
    cpu_before = cpu_seconds_of_tree(pid)
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.million_edge",
            "client",
            str(port),
            str(names_file),
            str(concurrency),
            str(duration),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 120,
    )
    server_cpu = cpu_seconds_of_tree(pid) - cpu_before
    result: dict[str, float] = json.loads(finished.stdout)
    result["per_second"] = round(result["handshakes"] / result["seconds"], 1)
    result["server_cpu_seconds"] = round(server_cpu, 2)
    result["per_server_cpu_second"] = round(result["handshakes"] / max(server_cpu, 1e-9), 1)
    return result


# --- the sides --------------------------------------------------------------------------------


def run_linkcert(
    fixture: million_fixture.Fixture,
    processes: int,
    run_dir: Path,
    args: argparse.Namespace,
    extra_env: dict[str, str] | None = None,
) -> EdgeFigures:
    https_port, http_port = free_port(), free_port()
    root_pem = run_dir / "root.pem"
    root_pem.write_bytes(fixture.root_pem)
    env = {
        **os.environ,
        **fixture.env(),
        "LINKCERT_HTTPS_LISTEN": f"{LOOPBACK}:{https_port}",
        "LINKCERT_HTTP_LISTEN": f"{LOOPBACK}:{http_port}",
        "LINKCERT_DATA_DIR": str(run_dir / "data"),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    # A fixture made by an older version: brought to the current schema first, untimed.
    subprocess.run(
        [sys.executable, "-m", "linkcert", "migrate"], env=env, check=True, capture_output=True
    )
    log = (run_dir / "edge.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "linkcert", "edge", "--processes", str(processes)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    figures = EdgeFigures("linkcert", fixture.n)
    try:
        measure(figures, lambda: process.pid, process, https_port, fixture, run_dir, args, started)
    finally:
        stop(process, timeout=60)
        log.close()
    return figures


def measure(
    figures: EdgeFigures,
    pid_of: Callable[[], int],
    process: subprocess.Popen[bytes],
    port: int,
    fixture: million_fixture.Fixture,
    run_dir: Path,
    args: argparse.Namespace,
    started: float,
    n: int | None = None,
) -> None:
    n = n or fixture.n
    verify = client_context(run_dir / "root.pem")
    picker = random.Random(7)
    sample = [
        fixture.name(1),
        fixture.name(n),
        *(fixture.name(picker.randint(1, n)) for _ in range(8)),
    ]
    wait_serving(pid_of, process, port, sample, verify, figures, started, 900)
    cold = [fixture.name(i) for i in picker.sample(range(1, n + 1), args.cold)]
    first_handshakes(port, cold, verify, figures)
    zipf = Zipf(n, args.zipf)
    drawn = [fixture.name(i) for i in zipf.draw(200_000)]
    figures.steady = steady_load(pid_of(), port, drawn, args.concurrency, args.duration, run_dir)
    figures.steady["top_1000_share"] = round(zipf.share_of_top(min(1000, n)), 3)
    figures.steady["distinct_names_drawn"] = len(set(drawn))
    memory = memory_of_tree(pid_of())
    figures.pss_after, figures.rss_after = memory.pss, memory.rss
    if args.hold:
        # Past the first full comparison with the store, which reads every served name.
        time.sleep(max(0.0, started + args.hold - time.monotonic()))
        figures.pss_held = memory_of_tree(pid_of()).pss
        figures.held_seconds = round(time.monotonic() - started)


def describe(figures: EdgeFigures) -> str:
    return json.dumps(asdict(figures), indent=1)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        client_main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", default=million_fixture.DEFAULT_DATABASE)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cold", type=int, default=200, help="names for the first handshakes")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--zipf", type=float, default=1.0, help="the Zipf exponent s")
    parser.add_argument("--caddy", type=int, default=0, help="also Caddy with this many names")
    parser.add_argument("--caddy-only", action="store_true", help="only Caddy (with --caddy)")
    parser.add_argument("--env", action="append", default=[], help="extra KEY=VALUE settings")
    parser.add_argument(
        "--hold", type=float, default=0.0, help="measure PSS again this many seconds from start"
    )
    args = parser.parse_args(argv)
    fixture = million_fixture.existing(million_fixture.database_url(args.database))
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="million-edge-") as tmp:
        run_dir = Path(tmp)
        if not args.caddy_only:
            figures = run_linkcert(fixture, args.processes, run_dir, args, extra)
            print(describe(figures), flush=True)
            log = (run_dir / "edge.log").read_text(errors="replace").splitlines()
            print("\n".join(line for line in log if "loaded" in line), file=sys.stderr)
        if args.caddy:
            from bench.million_caddy import run_caddy

            caddy = run_caddy(fixture, args.caddy, run_dir / "caddy", args)
            print(describe(caddy), flush=True)


if __name__ == "__main__":
    main()
