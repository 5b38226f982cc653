"""linkcert's edge side by side with Caddy: TLS handshakes, keep-alive requests, memory.

    python -m bench.edge [--certs 10000] [--duration 10] [--rounds 5] [--edge-workers 2]
                         [--with-haproxy]

One run, one machine, the same certificates on both sides (a throwaway CA and one ECDSA P-256
leaf per name), `wrk -t1` as the load for both:

1. Both servers start with every certificate available: linkcert's edge pool (one process per
   core, certificates loaded before it forks) in its CertificateCache; Caddy finds them in its
   storage (on-demand TLS, CA unreachable).
2. Every name gets one verified handshake on each side, so each has loaded what it serves;
   then the memory of each (RSS and PSS, summed over its processes) is read from /proc. Then
   every name again in a shuffled order: the server CPU per handshake when names rotate.
3. `rounds` times: full handshakes (`Connection: close`, one request per connection, no
   resumption on either side) and keep-alive requests (linkcert: tracked-link redirects
   `/c/<token>`; Caddy: `ok {host}`), the two sides' runs back to back (A B, B A, ...).
4. Both restart with one certificate and take as many handshakes on it as step 2 made; the
   memory difference from step 2, divided by the extra certificates, is the cost of one.

With `--with-haproxy`, HAProxy is a third side, run the same way (bench/edge_haproxy.py): it
terminates TLS with the same certificates and answers every request itself with a 302, the
upper bound of what HAProxy in front of linkcert could reach; the table gains HAProxy and
HAProxy/Caddy columns.

The table shows medians over the rounds, linkcert/Caddy ratios, and the median of each round's
own ratio. The machine may be shared: the figures per server CPU-second, and the other load seen
during the runs, help judge that. PSS is the fair sum over several processes (pages the edge's
processes share count once); RSS counts a shared page in every process that maps it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from bench.edge_caddy import CaddyPeer
from bench.edge_clients import resumption, touch_all
from bench.edge_haproxy import HaproxyPeer, haproxy_version, refuses_unknown_name
from bench.edge_linkcert import LinkcertEdge, tracked_path
from bench.edge_pki import BenchPki, bench_names, make_pki
from bench.edge_proc import Memory, cpu_seconds_of_tree, memory_of_tree
from bench.edge_wrk import run_wrk
from linkcert.edge.certs import DEFAULT_MAX_CONTEXTS


class Server(Protocol):
    https_port: int

    @property
    def pid(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Side:
    label: str
    start: Callable[[Path, BenchPki, Sequence[str]], Server]
    path_for: Callable[[str], str]


@dataclass(frozen=True)
class LoadRun:
    per_second: float
    p99_ms: float
    errors: int
    server_cpu_s: float
    wrk_cpu_s: float
    other_cpu_s: float  # everything else the machine did meanwhile
    seconds: float

    @property
    def per_server_cpu_second(self) -> float:
        return self.per_second * self.seconds / self.server_cpu_s if self.server_cpu_s else 0.0


@dataclass
class SideFigures:
    label: str
    handshakes: list[LoadRun] = field(default_factory=list)
    keep_alive: list[LoadRun] = field(default_factory=list)
    memory_all: Memory | None = None
    memory_one: Memory | None = None
    touch_seconds: float = 0.0
    first_use_cpu_ms: float = 0.0  # server CPU per handshake, each name's first
    rotation_cpu_ms: float = 0.0  # server CPU per handshake, all names again in a shuffled order
    ticket_offered: bool = False
    session_resumed: bool = False
    notes: list[str] = field(default_factory=list)


def _machine_busy_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load(
    server: Server,
    name: str,
    path: str,
    *,
    connections: int,
    seconds: float,
    close_each: bool,
    script_dir: Path,
) -> LoadRun:
    server_before = cpu_seconds_of_tree(server.pid)
    wrk_before = _children_cpu_seconds()
    busy_before = _machine_busy_seconds()
    result = run_wrk(
        name=name,
        port=server.https_port,
        path=path,
        connections=connections,
        seconds=seconds,
        close_each=close_each,
        script_dir=script_dir,
    )
    busy = _machine_busy_seconds() - busy_before
    server_cpu = cpu_seconds_of_tree(server.pid) - server_before
    wrk_cpu = _children_cpu_seconds() - wrk_before
    return LoadRun(
        per_second=result.per_second,
        p99_ms=result.p99_ms,
        errors=result.errors,
        server_cpu_s=server_cpu,
        wrk_cpu_s=wrk_cpu,
        other_cpu_s=max(0.0, busy - server_cpu - wrk_cpu),
        seconds=result.seconds,
    )


def _touch(
    server: Server, names: Sequence[str], pki: BenchPki, label: str, *, verify: bool = True
) -> tuple[float, float]:
    """Handshakes for `names`, in order; (seconds taken, server CPU-ms per handshake)."""
    started = time.monotonic()
    cpu_before = cpu_seconds_of_tree(server.pid)
    failures = touch_all(server.https_port, names, pki.root_pem, verify=verify)
    cpu = cpu_seconds_of_tree(server.pid) - cpu_before
    if failures:
        raise RuntimeError(f"{label}: {failures} of {len(names)} handshakes failed")
    return time.monotonic() - started, cpu * 1000 / len(names)


def _sides(edge_workers: int, edge_contexts: int, with_haproxy: bool = False) -> list[Side]:
    def start_linkcert(run_dir: Path, pki: BenchPki, names: Sequence[str]) -> Server:
        return LinkcertEdge(run_dir, pki, names, workers=edge_workers, max_contexts=edge_contexts)

    def start_caddy(run_dir: Path, pki: BenchPki, names: Sequence[str]) -> Server:
        return CaddyPeer(run_dir, pki, list(names))

    def start_haproxy(run_dir: Path, pki: BenchPki, names: Sequence[str]) -> Server:
        return HaproxyPeer(run_dir, pki, names, threads=edge_workers)

    sides = [
        Side("linkcert", start_linkcert, tracked_path),
        Side("Caddy", start_caddy, lambda name: "/"),
    ]
    if with_haproxy:
        sides.append(Side("HAProxy", start_haproxy, lambda name: "/"))
    return sides


@dataclass(frozen=True)
class Options:
    certs: int
    duration: float
    rounds: int
    connections: int
    handshake_connections: int
    edge_workers: int
    edge_contexts: int
    with_haproxy: bool = False


def run(options: Options, work: Path, say: Callable[[str], None]) -> list[SideFigures]:
    names = bench_names(max(options.certs, 1))
    say(f"creating a throwaway CA and {len(names):,} ECDSA P-256 certificates")
    pki = make_pki(work / "pki", names)
    sides = _sides(options.edge_workers, options.edge_contexts, options.with_haproxy)
    figures = [SideFigures(side.label) for side in sides]
    target = names[0]
    shuffled = random.Random(1).sample(names, len(names))

    servers: list[Server] = []
    try:
        for side, side_figures in zip(sides, figures, strict=True):
            say(f"{side.label}: starting with {len(names):,} certificates")
            server = side.start(work / f"{side.label.lower()}-all", pki, names)
            servers.append(server)
            say(f"{side.label}: one handshake for each name")
            side_figures.touch_seconds, side_figures.first_use_cpu_ms = _touch(
                server, names, pki, side.label
            )
            side_figures.memory_all = memory_of_tree(server.pid)
            say(f"{side.label}: every name again, shuffled")
            _, side_figures.rotation_cpu_ms = _touch(
                server, shuffled, pki, side.label, verify=False
            )
            side_figures.ticket_offered, side_figures.session_resumed = resumption(
                server.https_port, target, side.path_for(target), pki.root_pem
            )
            if isinstance(server, CaddyPeer):
                side_figures.notes.append(f"ask endpoint consulted {server.asked} times")
                side_figures.notes.append(
                    f"log lines about obtaining certificates: {server.issuance_log_lines()}"
                )
            if isinstance(server, HaproxyPeer):
                side_figures.notes.extend(_haproxy_notes(server))
        # The machine may be shared: runs of the sides follow each other closely (A B, then
        # B A for the other kind, and the other way round in the next round), so each pair
        # meets about the same background load, and each round gives a ratio of its own. With
        # HAProxy (A B C, then C B A), Caddy's runs sit between the other two sides' runs.
        pairs = list(zip(sides, figures, servers, strict=True))
        for round_number in range(options.rounds):
            order = pairs if round_number % 2 == 0 else pairs[::-1]
            for kind, close_each, connections in (
                ("full handshakes", True, options.handshake_connections),
                ("keep-alive requests", False, options.connections),
            ):
                for side, side_figures, server in order:
                    say(f"round {round_number + 1}: {side.label} {kind}")
                    run = _load(
                        server,
                        target,
                        side.path_for(target),
                        connections=connections,
                        seconds=options.duration,
                        close_each=close_each,
                        script_dir=work,
                    )
                    (side_figures.handshakes if close_each else side_figures.keep_alive).append(run)
                order = order[::-1]
    finally:
        for server in servers:
            server.close()

    # The same traffic with one certificate: what remains of the difference is certificates.
    for side, side_figures in zip(sides, figures, strict=True):
        say(f"{side.label}: restarting with 1 certificate, {len(names):,} handshakes on it")
        server = side.start(work / f"{side.label.lower()}-one", pki, [target])
        try:
            _touch(server, [target] * len(names), pki, side.label)
            side_figures.memory_one = memory_of_tree(server.pid)
        finally:
            server.close()
    return figures


def _haproxy_notes(server: HaproxyPeer) -> list[str]:
    refused = refuses_unknown_name(server.https_port)
    return [
        haproxy_version(),
        f"start-up (loads every certificate) {server.start_seconds:.1f}s, "
        f"{server.start_cpu_seconds:.1f} CPU-s",
        f"handshake for a name without a certificate refused: {refused}",
        f"log lines: {server.warnings()}",
    ]


# Reporting ------------------------------------------------------------------------------------


def _median(runs: list[LoadRun], value: Callable[[LoadRun], float]) -> float:
    return statistics.median(value(run) for run in runs) if runs else 0.0


def _per_certificate(figures: SideFigures, certs: int, measure: str) -> float:
    if figures.memory_all is None or figures.memory_one is None or certs < 2:
        return 0.0
    grown: int = getattr(figures.memory_all, measure) - getattr(figures.memory_one, measure)
    return grown / (certs - 1)


def paired_ratio(ours: list[LoadRun], theirs: list[LoadRun]) -> float:
    """The median over rounds of (ours / theirs) within each round."""
    ratios = [
        a.per_second / b.per_second for a, b in zip(ours, theirs, strict=True) if b.per_second
    ]
    return statistics.median(ratios) if ratios else 0.0


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if theirs else "n/a"


def table(figures: list[SideFigures], certs: int) -> str:
    """linkcert, the peer (Caddy) and linkcert/peer; then each further side (HAProxy) and
    side/peer."""
    ours, theirs, *others = figures
    mib = 1024 * 1024
    rows: list[tuple[str, list[float], str]] = []

    def add(label: str, value: Callable[[SideFigures], float], unit: str) -> None:
        rows.append((label, [value(side) for side in figures], unit))

    add("full TLS handshakes/s", lambda f: _median(f.handshakes, lambda r: r.per_second), "")
    add("  p99 latency", lambda f: _median(f.handshakes, lambda r: r.p99_ms), "ms")
    add(
        "  handshakes per server CPU-second",
        lambda f: _median(f.handshakes, lambda r: r.per_server_cpu_second),
        "",
    )
    add("  server CPU per handshake, each name's first", lambda f: f.first_use_cpu_ms, "ms")
    add("  server CPU per handshake, all names in turn", lambda f: f.rotation_cpu_ms, "ms")
    add("keep-alive requests/s", lambda f: _median(f.keep_alive, lambda r: r.per_second), "")
    add("  p99 latency", lambda f: _median(f.keep_alive, lambda r: r.p99_ms), "ms")
    add(
        "  requests per server CPU-second",
        lambda f: _median(f.keep_alive, lambda r: r.per_server_cpu_second),
        "",
    )
    add(
        f"RSS with {certs:,} certificates",
        lambda f: f.memory_all.rss / mib if f.memory_all else 0.0,
        "MiB",
    )
    add("RSS with 1 certificate", lambda f: f.memory_one.rss / mib if f.memory_one else 0.0, "MiB")
    add(
        f"PSS with {certs:,} certificates",
        lambda f: f.memory_all.pss / mib if f.memory_all else 0.0,
        "MiB",
    )
    add("PSS with 1 certificate", lambda f: f.memory_one.pss / mib if f.memory_one else 0.0, "MiB")
    add("bytes per loaded certificate (PSS)", lambda f: _per_certificate(f, certs, "pss"), "B")
    add("bytes per loaded certificate (RSS)", lambda f: _per_certificate(f, certs, "rss"), "B")

    header = f"| | {ours.label} | {theirs.label} | {ours.label}/{theirs.label} |"
    header += "".join(f" {other.label} | {other.label}/{theirs.label} |" for other in others)
    lines = [header, "|---|---:|---:|---:|" + "---:|---:|" * len(others)]
    for label, values, unit in rows:
        decimals = {"ms": 2, "MiB": 1}.get(unit, 0)
        suffix = f" {unit}" if unit else ""
        mine, peer, *rest = values
        cells = [
            f"{mine:,.{decimals}f}{suffix}",
            f"{peer:,.{decimals}f}{suffix}",
            _ratio(mine, peer),
        ]
        for value in rest:
            cells += [f"{value:,.{decimals}f}{suffix}", _ratio(value, peer)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    paired = "; ".join(
        f"{side.label}/{theirs.label}: full handshakes/s "
        f"{paired_ratio(side.handshakes, theirs.handshakes):.2f}×, keep-alive requests/s "
        f"{paired_ratio(side.keep_alive, theirs.keep_alive):.2f}×"
        for side in (ours, *others)
    )
    if not others:  # the sentence as it was before there could be a third side
        paired = paired.removeprefix(f"{ours.label}/{theirs.label}: ")
    lines.append(
        f"Ratios within each round (median): {paired}. Other load on the machine "
        f"during the runs (median): {_background(figures):.2f} cores."
    )
    return "\n".join(lines)


def _background(figures: list[SideFigures]) -> float:
    runs = [run for side in figures for run in (*side.handshakes, *side.keep_alive)]
    return statistics.median(run.other_cpu_s / run.seconds for run in runs) if runs else 0.0


def details(figures: list[SideFigures]) -> str:
    lines = []
    for side in figures:
        for kind, runs in (("handshakes", side.handshakes), ("keep-alive", side.keep_alive)):
            for run in runs:
                lines.append(
                    f"{side.label} {kind}: {run.per_second:,.0f}/s p99 {run.p99_ms:.1f} ms, "
                    f"errors {run.errors}, CPU-s server {run.server_cpu_s:.1f} "
                    f"wrk {run.wrk_cpu_s:.1f} other {run.other_cpu_s:.1f} in {run.seconds:.1f}s"
                )
        lines.append(
            f"{side.label}: session ticket offered {side.ticket_offered}, "
            f"resumed {side.session_resumed}; touching every name took "
            f"{side.touch_seconds:.1f}s" + "".join(f"; {note}" for note in side.notes)
        )
        for label, memory in (("all", side.memory_all), ("one", side.memory_one)):
            if memory is not None:
                lines.append(
                    f"{side.label} memory ({label}): RSS {memory.rss / 2**20:.1f} MiB, "
                    f"PSS {memory.pss / 2**20:.1f} MiB, {memory.processes} process(es)"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="linkcert's edge side by side with Caddy, optionally HAProxy (see "
        "bench/RESULTS.md)"
    )
    parser.add_argument("--certs", type=int, default=10_000, help="certificates (names) loaded")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=5, help="load runs per side and kind")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c, keep-alive runs")
    parser.add_argument(
        "--handshake-connections", type=int, default=64, help="wrk -c, handshake runs"
    )
    parser.add_argument(
        "--edge-workers", type=int, default=os.cpu_count() or 1, help="linkcert edge processes"
    )
    parser.add_argument(
        "--edge-contexts",
        type=int,
        default=DEFAULT_MAX_CONTEXTS,
        help="ready TLS contexts each linkcert edge process keeps (CertificateCache max_contexts)",
    )
    parser.add_argument(
        "--with-haproxy",
        action="store_true",
        help="also measure HAProxy terminating TLS and answering a 302 itself (a third side)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    for tool in ("caddy", "wrk", *(["haproxy"] if args.with_haproxy else [])):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian package {tool})")
    options = Options(
        certs=args.certs,
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        handshake_connections=args.handshake_connections,
        edge_workers=args.edge_workers,
        edge_contexts=args.edge_contexts,
        with_haproxy=args.with_haproxy,
    )

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    try:
        figures = run(options, work, say)
    finally:
        if args.keep:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    certs = max(options.certs, 1)
    print(
        f"edge benchmark, {datetime.date.today()}, {platform.node()}, {os.cpu_count()} CPUs; "
        f"{certs:,} certificates, wrk -t1 -c{options.connections} "
        f"(handshakes -c{options.handshake_connections}), {options.duration:g}s x "
        f"{options.rounds} rounds, linkcert edge: {options.edge_workers} processes, "
        f"at most {options.edge_contexts:,} TLS contexts each"
        + (f"; HAProxy: nbthread {options.edge_workers}" if options.with_haproxy else "")
        + "\n"
    )
    print(table(figures, certs))
    print()
    print(details(figures))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"options": asdict(options), "sides": [asdict(side) for side in figures]},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
