"""The two measurements, for either contender: latency of one new name, and a wave."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Protocol

from bench.provisioning.caddy_side import CaddyFailed, CaddySide
from bench.provisioning.figures import Latency, Wave, cpu_seconds
from bench.provisioning.linkcert_side import LinkcertFailed, LinkcertSide

# Caddy refuses at once a handshake for a new name past its own on-demand rate limit ("on-demand
# rate limit exceeded", a TLS internal-error alert). Such a name is tried again after a pause,
# like a reader clicking again, until the wave's deadline: each name counts when it is served.
CADDY_RETRY_PAUSE = 1.0
VERIFY_CONCURRENCY = 50
_CLIENT_FAILURES = (OSError, ssl.SSLError, TimeoutError, ValueError, CaddyFailed, LinkcertFailed)


class Contender(Protocol):
    name: str

    @property
    def pid(self) -> int | None: ...
    async def prepare(self, names: list[str]) -> None: ...
    async def obtain(self, name: str, timeout: float) -> float: ...


def names(kind: str, side: str, count: int) -> list[str]:
    return [f"{kind}-{index}.{side}.bench.test" for index in range(1, count + 1)]


async def latency(side: Contender, reps: int, timeout: float) -> Latency:
    """One cold name (not in the figures but reported), then `reps` new names one at a time."""
    first = f"first.{side.name}.bench.test"
    await side.prepare([first])
    cold = await side.obtain(first, timeout)
    samples: list[float] = []
    for name in names("lat", side.name, reps):
        await side.prepare([name])
        samples.append(await side.obtain(name, timeout))
    return Latency(cold, samples)


class CpuMeter:
    """CPU seconds used by some processes between start() and read()."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {label: pid for label, pid in pids.items() if pid is not None}
        self._before: dict[str, float] = {}

    def start(self) -> None:
        self._before = {label: cpu_seconds(pid) for label, pid in self.pids.items()}

    def read(self) -> dict[str, float]:
        return {
            label: cpu_seconds(pid) - self._before.get(label, 0.0)
            for label, pid in self.pids.items()
        }


async def linkcert_wave(side: LinkcertSide, size: int, timeout: float, meter: CpuMeter) -> Wave:
    """Save `size` domains at once; each is done when the edge serves its certificate."""
    wave = names("wave", side.name, size)
    await side.prepare(wave)
    meter.start()
    started = time.monotonic()
    side.save(wave)
    futures = [side.served_at(name) for name in wave]
    await asyncio.wait(futures, timeout=timeout)
    cpu = meter.read()
    done_at = [f.result() - started for f in futures if f.done()]
    await side.saved()
    served = [name for name, f in zip(wave, futures, strict=True) if f.done()]
    failures = [f"{name}: not served in {timeout:g} s" for name in wave if name not in served]
    verified = await _verify_all(side, served, failures)
    return Wave(size, done_at, verified, failures, cpu)


async def _verify_all(side: LinkcertSide, served: list[str], failures: list[str]) -> int:
    """Check every served name over verified HTTPS, after the wave (not timed)."""
    limit = asyncio.Semaphore(VERIFY_CONCURRENCY)
    verified = 0

    async def one(name: str) -> None:
        nonlocal verified
        async with limit:
            try:
                await side.verify(name)
                verified += 1
            except _CLIENT_FAILURES as exc:
                failures.append(f"{name}: {exc}")

    await asyncio.gather(*(one(name) for name in served))
    return verified


async def caddy_wave(
    side: CaddySide, size: int, timeout: float, concurrency: int, meter: CpuMeter
) -> Wave:
    """Open handshakes for `size` new names, `concurrency` at a time; each one's verified
    answer is its completion."""
    wave = names("wave", side.name, size)
    await side.prepare(wave)
    limit = asyncio.Semaphore(concurrency)
    done_at: list[float] = []
    failures: list[str] = []
    retried = 0
    meter.start()
    started = time.monotonic()
    deadline = started + timeout
    attempts = int(timeout / CADDY_RETRY_PAUSE) + 1

    async def one(name: str) -> None:
        nonlocal retried
        last = "the wave's deadline passed first"
        async with limit:
            for _ in range(attempts):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await side.obtain(name, remaining)
                except _CLIENT_FAILURES as exc:
                    last = f"{type(exc).__name__}: {exc}"
                    retried += 1
                    await asyncio.sleep(CADDY_RETRY_PAUSE)
                    continue
                done_at.append(time.monotonic() - started)
                return
        failures.append(f"{name}: {last}")

    await asyncio.gather(*(one(name) for name in wave))
    cpu = meter.read()
    return Wave(size, done_at, len(done_at), failures, cpu, retried)
