"""Provisioning: how soon a newly saved domain serves HTTPS, linkcert next to Caddy.

    python -m bench.provision                   # 5 latency repetitions, then a wave of 500
    python -m bench.provision --reps 3 --wave 100 --json /tmp/provision.json

One run starts one local ACME CA (Debian's Pebble, no validation sleeps) and one loopback DNS
server, then runs linkcert and Caddy (on-demand TLS, `../shared/bench/caddy-peer.Caddyfile`)
one after the other on the same two ports, since Pebble validates on one HTTP and one TLS port.

(a) Latency, each repetition with a new name. linkcert: from saving the domain to a verified
    HTTPS answer (a tracked link's 302) from its edge. Caddy: from the first handshake for the
    name, which starts its on-demand issuance, to a verified `ok <name>` answer. The first name
    of each side is timed apart: it includes registering the ACME account.
(b) A wave of new names. linkcert: all saved at once, each done when its edge serves it (every
    name is then checked over HTTPS). Caddy: handshakes for all names, `--concurrency` at a
    time, each done at its verified answer. Reported as certificates per minute.
(d) DNS-01 through a delegation (`--dns01-reps`, 0 to skip): linkcert's latency, as in (a),
    for names secured before the switch: each still points elsewhere and delegates its
    `_acme-challenge` to the platform's zone, served by Knot (Debian's `knot`), where linkcert
    writes the TXT record with a TSIG-signed update and waits until Knot answers it. Same
    Pebble: with this row on, every side's Pebble asks a resolver in front of Knot and the DNS
    server, so the three rows meet the same DNS path.

A verified answer trusts only Pebble's root, with SNI and hostname checking for the name.
Child processes are stopped on exit, Ctrl-C included; state lives in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.provisioning import runs
from bench.provisioning.caddy_side import (
    DEFAULT_CADDYFILE,
    CaddyFailed,
    CaddySide,
    caddy_binary,
)
from bench.provisioning.figures import Latency, Machine, Wave, pid_with_argument, ratio
from bench.provisioning.linkcert_side import LinkcertFailed, LinkcertSide
from bench.provisioning.world import World
from linkcert.testbed.knot import DEFAULT_BINARY as KNOTD
from linkcert.testbed.knot import KnotStartError
from linkcert.testbed.pebble import PebbleStartError

LATENCY_TARGET = 1.0  # linkcert/Caddy, at most
FAILOVER_TARGET = 2.0  # linkcert with its first CA down / linkcert with one CA, at most
WAVE_TARGET = 10.0  # linkcert/Caddy certificates per minute, at least
SIDES = ("linkcert", "caddy")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.provision", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--reps", type=_positive, default=5, help="latency repetitions")
    parser.add_argument("--wave", type=_positive, default=500, help="names in the wave")
    parser.add_argument(
        "--concurrency", type=_positive, default=50, help="Caddy handshakes open at once"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per latency name")
    parser.add_argument("--wave-timeout", type=float, default=1200.0, help="seconds per wave")
    parser.add_argument("--only", choices=SIDES, help="run one side (no ratios)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--database-url", help="linkcert's database (default: SQLite, temp)")
    parser.add_argument("--worker-concurrency", type=_positive, help="linkcert's setting")
    parser.add_argument("--caddyfile", type=Path, default=DEFAULT_CADDYFILE)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    parser.add_argument(
        "--dns01-reps",
        type=int,
        default=5,
        help="linkcert latency repetitions by DNS-01 through a delegation (0: skip)",
    )
    parser.add_argument(
        "--failover-reps",
        type=int,
        default=5,
        help="linkcert latency repetitions with two CAs, the first down (0: skip)",
    )
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def _run_side(
    side_name: str, world: World, workdir: Path, args: argparse.Namespace
) -> tuple[Latency, Wave]:
    pebble_pid = pid_with_argument(str(world.pebble.config_path))
    if side_name == "linkcert":
        linkcert = LinkcertSide(
            world,
            workdir / "linkcert",
            database_url=args.database_url,
            worker_concurrency=args.worker_concurrency,
        )
        try:
            await linkcert.start()
            latency = await runs.latency(linkcert, args.reps, args.timeout)
            meter = runs.CpuMeter({"linkcert": linkcert.pid, "pebble": pebble_pid})
            wave = await runs.linkcert_wave(linkcert, args.wave, args.wave_timeout, meter)
        finally:
            await linkcert.stop()
        return latency, wave
    caddy = CaddySide(world, workdir / "caddy", args.caddyfile)
    try:
        await caddy.start()
        latency = await runs.latency(caddy, args.reps, args.timeout)
        meter = runs.CpuMeter({"caddy": caddy.pid, "pebble": pebble_pid})
        wave = await runs.caddy_wave(caddy, args.wave, args.wave_timeout, args.concurrency, meter)
    finally:
        await caddy.stop()
    return latency, wave


async def _variant_latency(
    world: World,
    workdir: Path,
    args: argparse.Namespace,
    directory: str,
    reps: int,
    *,
    first_ca_down: bool = False,
    dns01: bool = False,
) -> Latency:
    """linkcert's latency in a variant of its set-up: two CAs configured and the preferred one
    down (`first_ca_down`), or names secured before the switch by DNS-01 (`dns01`)."""
    linkcert = LinkcertSide(
        world,
        workdir / directory,
        database_url=args.database_url,
        worker_concurrency=args.worker_concurrency,
        first_ca_down=first_ca_down,
        dns01=dns01,
    )
    try:
        await linkcert.start()
        return await runs.latency(linkcert, reps, args.timeout)
    finally:
        await linkcert.stop()


async def _main(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM stops the run the way Ctrl-C does: children first, then the world.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    sides = [args.only] if args.only else list(SIDES)
    if "caddy" in sides:
        # Fail before any work when the peer cannot run.
        caddy_binary()
        if not args.caddyfile.is_file():
            raise CaddyFailed(f"the peer's Caddyfile is missing: {args.caddyfile}")
    results: dict[str, tuple[Latency, Wave]] = {}
    # Other work on the machine moves the figures: say how busy it was around the run.
    load_before = os.getloadavg()
    dns01 = "linkcert" in sides and args.dns01_reps > 0
    if dns01 and not shutil.which(KNOTD):
        raise KnotStartError(f"the DNS-01 row needs Knot ({KNOTD}); or pass --dns01-reps 0")
    with World(workdir, dns01=dns01) as world:
        for side_name in sides:
            print(f"{side_name}: latency x{args.reps}, then a wave of {args.wave}...", flush=True)
            results[side_name] = await _run_side(side_name, world, workdir, args)
        failover = None
        if "linkcert" in sides and args.failover_reps > 0:
            print(f"linkcert, first CA down: latency x{args.failover_reps}...", flush=True)
            failover = await _variant_latency(
                world, workdir, args, "linkcert-failover", args.failover_reps, first_ca_down=True
            )
        by_dns01 = None
        if dns01:
            print(f"linkcert, DNS-01 through a delegation: latency x{args.dns01_reps}...")
            by_dns01 = await _variant_latency(
                world, workdir, args, "linkcert-dns01", args.dns01_reps, dns01=True
            )
    report = _report(args, results)
    if by_dns01 is not None:
        http01 = results["linkcert"][0].median
        caddy = results["caddy"][0].median if "caddy" in results else None
        report["dns01"] = {
            "latency": by_dns01.to_json(),
            "http01_median_s": round(http01, 4),
            "caddy_median_s": round(caddy, 4) if caddy is not None else None,
            "difference_s": round(by_dns01.median - http01, 4),
            "ratio_to_http01": ratio(by_dns01.median, http01),
            "ratio_to_caddy": ratio(by_dns01.median, caddy) if caddy is not None else None,
        }
    if failover is not None:
        one_ca = results["linkcert"][0].median
        failover_ratio = ratio(failover.median, one_ca)
        report["failover"] = {
            "latency": failover.to_json(),
            "one_ca_median_s": round(one_ca, 4),
            "ratio": failover_ratio,
            "ratio_at_most": FAILOVER_TARGET,
            "met": failover_ratio is not None and failover_ratio <= FAILOVER_TARGET,
        }
    report["machine"]["load_average_before"] = [round(v, 2) for v in load_before]
    report["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return report


def _report(args: argparse.Namespace, results: dict[str, tuple[Latency, Wave]]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "provision",
        "command": "python -m bench.provision " + shlex.join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": Machine.here().to_json(),
        "versions": _versions(),
        "settings": {
            "reps": args.reps,
            "wave": args.wave,
            "caddy_concurrency": args.concurrency,
            "linkcert_worker_concurrency": args.worker_concurrency or "default",
            "linkcert_database": "given" if args.database_url else "sqlite",
        },
        "latency": {name: lat.to_json() for name, (lat, _) in results.items()},
        "wave": {name: wave.to_json() for name, (_, wave) in results.items()},
    }
    if set(results) == set(SIDES):
        (lat_l, wave_l), (lat_c, wave_c) = results["linkcert"], results["caddy"]
        median_ratio = ratio(lat_l.median, lat_c.median)
        rate_ratio = ratio(wave_l.per_minute, wave_c.per_minute)
        report["ratios"] = {
            "latency_median": median_ratio,
            "latency_p90": ratio(lat_l.p90, lat_c.p90),
            "wave_per_minute": rate_ratio,
        }
        report["targets"] = {
            "latency_ratio_at_most": LATENCY_TARGET,
            "latency_met": median_ratio is not None and median_ratio <= LATENCY_TARGET,
            "wave_ratio_at_least": WAVE_TARGET,
            "wave_met": rate_ratio is not None and rate_ratio >= WAVE_TARGET,
        }
    return report


def _versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("caddy", "pebble"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found[package] = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", package],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
    return found


def render(report: dict[str, Any]) -> str:
    """The table: one column per side, then the ratio linkcert/Caddy where both ran."""
    sides = [s for s in SIDES if s in report["latency"]]
    lat, wave = report["latency"], report["wave"]
    ratios = report.get("ratios", {})
    size = report["settings"]["wave"]
    rows = [
        ["", *sides, "linkcert/caddy" if len(sides) == 2 else ""],
        _row("first name, cold (s)", [lat[s]["first_s"] for s in sides], ".2f"),
        _row("latency median (s)", [lat[s]["median_s"] for s in sides], ".2f",
             ratios.get("latency_median")),
        _row("latency p90 (s)", [lat[s]["p90_s"] for s in sides], ".2f",
             ratios.get("latency_p90")),
        _row(f"wave of {size}: certificates/min", [wave[s]["per_minute"] for s in sides], ".0f",
             ratios.get("wave_per_minute")),
        _row(f"wave of {size}: last done (s)", [wave[s]["elapsed_s"] for s in sides], ".1f"),
        ["wave: verified over HTTPS", *[f"{wave[s]['verified']}/{size}" for s in sides], ""],
        _row("wave: handshakes refused, retried", [wave[s]["retried"] for s in sides], "d"),
        _row("wave: CPU-s of the side", [wave[s]["cpu_seconds"].get(s) for s in sides], ".1f"),
        _row("wave: CPU-s of Pebble", [wave[s]["cpu_seconds"].get("pebble") for s in sides],
             ".1f"),
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            [row[0].ljust(widths[0])]
            + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        )
        for row in rows
    ]
    targets = report.get("targets", {})
    for key, text in (("latency_met", "(a) latency ratio <= 1"), ("wave_met", "(b) ratio >= 10")):
        if key in targets:
            lines.append(f"target {text}: " + ("met" if targets[key] else "NOT met"))
    by_dns01 = report.get("dns01")
    if by_dns01 is not None:
        figures = by_dns01["latency"]
        versus_caddy = (
            f", {by_dns01['ratio_to_caddy']:.2f}x Caddy's"
            if by_dns01.get("ratio_to_caddy") is not None
            else ""
        )
        lines.append(
            f"linkcert, DNS-01 through a delegation (before the switch): latency median "
            f"{figures['median_s']:.2f} s, p90 {figures['p90_s']:.2f} s, first name "
            f"{figures['first_s']:.2f} s; {by_dns01['difference_s']:+.2f} s "
            f"({by_dns01['ratio_to_http01']:.2f}x) against HTTP-01{versus_caddy}"
        )
    failover = report.get("failover")
    if failover is not None:
        figures = failover["latency"]
        lines.append(
            f"linkcert, first CA down: latency median {figures['median_s']:.2f} s, "
            f"p90 {figures['p90_s']:.2f} s, first name {figures['first_s']:.2f} s "
            f"({failover['ratio']:.2f}x the one-CA median); target (c) <= "
            f"{failover['ratio_at_most']:g}x: " + ("met" if failover["met"] else "NOT met")
        )
    return "\n".join(lines)


def _row(label: str, values: list[Any], fmt: str, ratio_value: float | None = None) -> list[str]:
    def cell(value: Any) -> str:
        return "-" if value is None else format(value, fmt)

    return [label, *(cell(v) for v in values), "" if ratio_value is None else f"{ratio_value:.2f}"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-provision-"))
    try:
        report = asyncio.run(_main(args, workdir))
    except KeyboardInterrupt:
        print("interrupted; every child process was stopped", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("stopped; every child process was stopped", file=sys.stderr)
        return 143
    except (CaddyFailed, LinkcertFailed, PebbleStartError, KnotStartError) as exc:
        print(f"the benchmark failed: {exc}", file=sys.stderr)
        if not args.keep:
            print("run it again with --keep to look at the logs", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"state and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(render(report))
    machine = report["machine"]
    print(
        f"\n{machine['cores']} cores ({machine['cpu']}); load average before/after the run: "
        f"{machine['load_average_before'][0]:.1f}/{machine['load_average_after'][0]:.1f}"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
