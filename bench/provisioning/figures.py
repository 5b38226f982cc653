"""Figures from raw timings, and what the machine and the processes were doing."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def p90(samples: list[float]) -> float:
    """The 90th percentile, interpolated between samples (the largest one for a single one)."""
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=10, method="inclusive")[8]


@dataclass
class Latency:
    """Seconds per name: `first` is the cold start (account registration included)."""

    first: float
    samples: list[float]

    @property
    def median(self) -> float:
        return median(self.samples)

    @property
    def p90(self) -> float:
        return p90(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "first_s": round(self.first, 4),
            "samples_s": [round(s, 4) for s in self.samples],
            "median_s": round(self.median, 4),
            "p90_s": round(self.p90, 4),
        }


@dataclass
class Wave:
    """When each name of a wave was done, in seconds from the wave's start."""

    size: int
    done_at: list[float]
    verified: int
    failures: list[str] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    retried: int = 0  # requests the side refused and the client made again

    @property
    def elapsed(self) -> float:
        return max(self.done_at) if self.done_at else float("nan")

    @property
    def per_minute(self) -> float:
        """Certificates per minute over the whole wave, from its start to its last one."""
        if not self.done_at:
            return 0.0
        return len(self.done_at) / self.elapsed * 60

    def time_to(self, fraction: float) -> float | None:
        needed = max(1, round(self.size * fraction))
        ordered = sorted(self.done_at)
        return ordered[needed - 1] if len(ordered) >= needed else None

    def over_time(self, step: float = 1.0) -> list[int]:
        """Names done by the end of each `step` seconds (the curve of the wave)."""
        if not self.done_at:
            return []
        ordered = sorted(self.done_at)
        counts: list[int] = []
        index = 0
        for tick in range(1, int(self.elapsed / step) + 2):
            while index < len(ordered) and ordered[index] <= tick * step:
                index += 1
            counts.append(index)
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "completed": len(self.done_at),
            "verified": self.verified,
            "elapsed_s": round(self.elapsed, 3),
            "per_minute": round(self.per_minute, 1),
            "time_to_half_s": _rounded(self.time_to(0.5)),
            "time_to_all_s": _rounded(self.time_to(1.0)),
            "done_per_second": self.over_time(),
            "failures": len(self.failures),
            "failures_first": self.failures[:20],
            "retried": self.retried,
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu: str
    kernel: str
    python: str

    @classmethod
    def here(cls) -> Machine:
        cpu = "unknown"
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.exists():
            for line in cpuinfo.read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        return cls(
            cores=os.cpu_count() or 0,
            cpu=cpu,
            kernel=platform.release(),
            python=platform.python_version(),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_with_argument(argument: str) -> int | None:
    """The process whose command line contains `argument` (a path unique to this run)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in words:
            return int(entry.name)
    return None
