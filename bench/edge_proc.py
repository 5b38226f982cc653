"""Process plumbing for the edge benchmark: loopback ports, readiness, memory and CPU figures."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass

from linkcert.testbed.waiting import stop_process

LOOPBACK = "127.0.0.1"


class DeadPort:
    """A loopback port held bound but never listening: connecting to it is refused at once.

    Pointing a server's ACME CA there proves it never needed the CA: any attempt would fail.
    """

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind((LOOPBACK, 0))
        self.port: int = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until something accepts connections on the loopback `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} at start-up")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f}s")


def children_of(pid: int) -> list[int]:
    """The direct children of `pid` (from /proc, without any library)."""
    children: list[int] = []
    task_dir = f"/proc/{pid}/task"
    try:
        threads = os.listdir(task_dir)
    except FileNotFoundError:
        return children
    for thread in threads:
        try:
            with open(f"{task_dir}/{thread}/children") as listing:
                children.extend(int(child) for child in listing.read().split())
        except FileNotFoundError:
            continue
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found = [pid]
    index = 0
    while index < len(found):
        found.extend(children_of(found[index]))
        index += 1
    return found


@dataclass(frozen=True)
class Memory:
    """Bytes. `rss` counts pages shared between the processes once per process; `pss` divides
    each shared page among the processes sharing it, so the sum over a tree is what it costs."""

    rss: int
    pss: int
    processes: int


def _rollup_field(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no {field} in smaps_rollup")


def memory_of_tree(pid: int) -> Memory:
    rss = pss = count = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/smaps_rollup") as rollup:
                text = rollup.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        rss += _rollup_field(text, "Rss")
        pss += _rollup_field(text, "Pss")
        count += 1
    return Memory(rss, pss, count)


def cpu_seconds_of_tree(pid: int) -> float:
    """User plus system CPU time used so far by `pid` and its live descendants."""
    ticks = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it does not go in time. Only ever the process we started."""
    stop_process(process, timeout)
