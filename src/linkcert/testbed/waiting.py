"""Waiting for a condition instead of sleeping a guessed time, for a child process to stop, and
free loopback ports.

A test that sleeps "long enough" for something to happen is slow when the machine is idle and
flaky when it is busy. `wait_for` polls the condition and returns as soon as it holds, with a
deadline that only a broken program reaches; the message then says what was awaited.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0


class NotInTime(AssertionError):
    """The condition awaited did not hold before the deadline."""


def wait_for(
    condition: Callable[[], T],
    what: str = "the condition",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
) -> T:
    """Poll `condition` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotInTime(f"{what}: not reached within {timeout:g} s")
        time.sleep(interval)


async def wait_for_async(
    condition: Callable[[], T],
    what: str = "the condition",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
) -> T:
    """`wait_for` inside an event loop: the loop keeps running while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotInTime(f"{what}: not reached within {timeout:g} s")
        await asyncio.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (another process may still take it first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within `timeout` seconds; then reap
    it. Nothing for a process already gone. Only ever for a process the caller started."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
