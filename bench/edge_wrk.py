"""Driving `wrk` at a benchmark name that no resolver knows.

wrk takes the TLS server name (SNI) and the Host header from the URL's host, and resolves that
host with getaddrinfo before it starts. The benchmark names (`*.edge-bench.test`) resolve
nowhere, and this machine has no nss-myhostname to make `*.localhost` names resolve either. wrk's
Lua API has a documented `wrk.lookup`, and wrk runs its start-up resolution through the Lua
function `wrk.resolve`, which a script may replace: the script below replaces it so that the
connections go to 127.0.0.1 while SNI and Host stay the benchmark name. No resolver or
/etc/hosts entry is involved.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.edge_proc import LOOPBACK

_SCRIPT = """
-- Connect to the loopback address; SNI and Host still come from the URL's host name.
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup("%(address)s", service)
end
%(headers)s
function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      "WRK-RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"connect_errors\\": %%d, " ..
      "\\"read_errors\\": %%d, \\"write_errors\\": %%d, \\"status_errors\\": %%d, " ..
      "\\"timeouts\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d, \\"max_us\\": %%d}\\n",
      summary.requests, summary.duration, errors.connect, errors.read, errors.write,
      errors.status, errors.timeout, latency:percentile(50), latency:percentile(99),
      latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # connect, read, write, timeouts and non-2xx/3xx answers
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    *,
    name: str,
    port: int,
    path: str,
    connections: int,
    seconds: float,
    close_each: bool,
    script_dir: Path,
) -> WrkResult:
    """One `wrk -t1` run against https://name:port/path; each request on a new connection (a
    new TLS handshake) when `close_each`."""
    headers = 'wrk.headers["Connection"] = "close"' if close_each else ""
    script = script_dir / ("wrk-close.lua" if close_each else "wrk-keepalive.lua")
    script.write_text(_SCRIPT % {"address": LOOPBACK, "headers": headers})
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"https://{name}:{port}{path}",
    ]
    # wrk stops by itself after -d; the timeout only guards against a hung run.
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in finished.stdout.splitlines():
        if line.startswith("WRK-RESULT "):
            raw = json.loads(line.removeprefix("WRK-RESULT "))
            return WrkResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                errors=sum(
                    raw[key]
                    for key in (
                        "connect_errors",
                        "read_errors",
                        "write_errors",
                        "status_errors",
                        "timeouts",
                    )
                ),
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                max_ms=raw["max_us"] / 1000,
            )
    raise RuntimeError(
        f"wrk gave no result (status {finished.returncode}):\n{finished.stdout}{finished.stderr}"
    )
