"""Child processes that never outlive the benchmark.

Every child is started in a session of its own (so that Ctrl-C reaches the benchmark alone and
the benchmark stops the children in order) and asks the kernel to send it SIGTERM if the
benchmark dies without cleaning up. Each one is also remembered until it is reaped, and an exit
hook kills whatever is left, by process id.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
# Looked up here, once: the child calls it between fork and exec, where loading a library
# could deadlock on a lock another thread of this process held at fork time.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_live: dict[int, asyncio.subprocess.Process] = {}


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


async def spawn(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: IO[bytes] | None = None,
    pipes: bool = False,
) -> asyncio.subprocess.Process:
    """Start `command`; with `pipes`, its stdin and stdout are pipes to this process."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if pipes else (log or asyncio.subprocess.DEVNULL),
        stderr=log or asyncio.subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent,
        limit=2**24,
    )
    _live[process.pid] = process
    return process


async def stop(process: asyncio.subprocess.Process, grace: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after `grace` seconds; returns the exit status."""
    try:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait_for(process.wait(), grace)
    finally:
        _live.pop(process.pid, None)
    return process.returncode if process.returncode is not None else -1


@atexit.register
def _kill_leftovers() -> None:
    # Reached only when the event loop could not stop a child (e.g. a second Ctrl-C).
    for pid, process in list(_live.items()):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _live.pop(pid, None)
