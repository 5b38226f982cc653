"""How fast the `linkcert` command starts: `--help`, `domain status --json`, `check --json`.

    python -m bench.cli_start [--runs 30] [--json var/bench/cli_start.json]

Runs each command with hyperfine (Debian's `hyperfine`; `scripts/install-system-packages.sh
--bench` installs it) against a throwaway SQLite store holding one secured-looking domain, and a
DNS server on loopback that answers for it, so the commands do their whole work. The interpreter
alone (`python -c pass`) and `import typer` are measured beside them: the floor no Python command
line goes under. Each command's target is 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from linkcert.domains import create_account, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.store import Store
from linkcert.testbed.localdns import LocalDNSServer

TARGET_SECONDS = 0.3
DOMAIN = "links.bench-shop.test"
PLATFORM = "edge.linkcert.test"


def _commands(linkcert: str, python: str, nameserver: str) -> dict[str, list[str]]:
    return {
        "python -c pass (floor)": [python, "-c", "pass"],
        "python -c 'import typer' (floor)": [python, "-c", "import typer"],
        "linkcert --help": [linkcert, "--help"],
        "linkcert domain status NAME --json": [linkcert, "domain", "status", DOMAIN, "--json"],
        "linkcert check NAME --json": [
            linkcert,
            "check",
            DOMAIN,
            "--target",
            PLATFORM,
            "--allow-test-domains",
            "--nameserver",
            nameserver,
            "--json",
        ],
    }


def _prepare(data_dir: Path) -> None:
    store = Store(f"sqlite:///{data_dir / 'linkcert.sqlite3'}")
    store.migrate()
    create_account(store, "bench-shop", ["ops@bench-shop.test"])
    set_tracking_domain(store, "bench-shop", DOMAIN, NamePolicy(allow_test_domains=True))
    store.close()


def measure(runs: int) -> dict[str, dict[str, float]]:
    hyperfine = shutil.which("hyperfine")
    if hyperfine is None:
        sys.exit("hyperfine is missing: run scripts/install-system-packages.sh --bench")
    bin_dir = Path(sys.executable).parent
    linkcert = str(bin_dir / "linkcert")
    with tempfile.TemporaryDirectory(prefix="cli-start-") as tmp, LocalDNSServer() as dns:
        data_dir = Path(tmp)
        dns.add(PLATFORM, "A", "127.0.0.1")
        dns.add(DOMAIN, "CNAME", PLATFORM + ".")
        _prepare(data_dir)
        commands = _commands(linkcert, sys.executable, dns.nameserver)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINKCERT_")}
        env["LINKCERT_DATA_DIR"] = str(data_dir)
        export = data_dir / "hyperfine.json"
        argv = [hyperfine, "-N", "--warmup", "3", "--runs", str(runs), "--export-json"]
        argv.append(str(export))
        for label, command in commands.items():
            argv += ["-n", label, " ".join(_quote(part) for part in command)]
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        results: list[dict[str, Any]] = json.loads(export.read_text())["results"]
    return {
        r["command"]: {k: float(r[k]) for k in ("mean", "stddev", "median", "min", "max")}
        | {"cpu": float(r["user"]) + float(r["system"])}
        for r in results
    }


def _quote(part: str) -> str:
    return f"'{part}'" if " " in part else part


def render(figures: dict[str, dict[str, float]]) -> str:
    floor = figures["python -c pass (floor)"]["median"]
    lines = [
        "| command | median | mean ± σ | min | CPU (user+sys) | target (median) | over floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, f in figures.items():
        target = ""
        if not label.endswith("(floor)"):
            target = "met" if f["median"] < TARGET_SECONDS else "missed"
            target = f"< {TARGET_SECONDS:.1f} s: {target}"
        lines.append(
            f"| `{label}` | {f['median'] * 1000:.0f} ms | {f['mean'] * 1000:.0f} ± "
            f"{f['stddev'] * 1000:.0f} ms | {f['min'] * 1000:.0f} ms | {f['cpu'] * 1000:.0f} ms | "
            f"{target} | "
            f"{f['median'] / floor:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    figures = measure(args.runs)
    print(render(figures))
    print(f"\nload average (1 min) before {before:.1f}, after {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
