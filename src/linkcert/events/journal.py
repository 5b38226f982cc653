"""How many events an edge process that died may have taken with it.

An edge keeps the clicks and opens of about the last second in memory before it writes them
(docs/runbook.md). A clean stop writes them all. A process killed outright (`kill -9`, the
kernel's OOM killer, a power cut) loses that window; to be able to say how large it was, each
edge process notes four times a second, in a small file of its own under
`<data_dir>/edge-journal/`, how many events it holds and how many it took in the last second,
and removes the file when it stops cleanly. The next edge to start on the machine finds the
files of processes that no longer run, logs how many events may have been lost with each, and
removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path

from linkcert.tracking import ClickRecorder

log = logging.getLogger("linkcert.events.journal")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def report_lost(directory: Path) -> list[tuple[int, int]]:
    """Log and remove the notes of edge processes that died without a clean stop; return
    (pid, events that may have been lost) for each."""
    found: list[tuple[int, int]] = []
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.json")):
        try:
            pid = int(path.stem)
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            note = json.loads(path.read_text())
            waiting = int(note.get("pending", 0))
            rate = int(note.get("recorded_last_second", 0))
            at = float(note.get("at", 0.0))
            interval = float(note.get("interval", 1.0))
        except (OSError, ValueError, TypeError):
            waiting, rate, at, interval = 0, 0, 0.0, 1.0
        # Held at its last note, plus what the rate it had then brings in until the next note
        # would have been due: an estimate, since what came after the note is not known.
        lost = waiting + math.ceil(rate * min(max(interval, 0.0), 1.0))
        found.append((pid, lost))
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at else "unknown time"
        log.warning(
            "edge process %d stopped without writing its events (last seen %s): about %d "
            "click and open events may have been lost (%d waiting at its last note, %d "
            "recorded in the second before it, notes every %g s)",
            pid,
            when,
            lost,
            waiting,
            rate,
            interval,
            extra={"events_maybe_lost": lost, "pid": pid},
        )
        with contextlib.suppress(OSError):
            path.unlink()
    return found


class Journal:
    """This process's note, rewritten every `interval` seconds while it runs."""

    def __init__(self, directory: Path, recorder: ClickRecorder, interval: float = 0.25) -> None:
        self.directory = directory
        self.path = directory / f"{os.getpid()}.json"
        self.recorder = recorder
        self.interval = interval

    def _write(self, recorded_last_second: int) -> None:
        stats = self.recorder.stats
        note = {
            "pid": os.getpid(),
            "at": time.time(),
            "pending": stats.pending,
            "recorded": stats.recorded,
            "delivered": stats.delivered,
            "recorded_last_second": recorded_last_second,
            "interval": self.interval,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(note))
        temporary.replace(self.path)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("cannot keep the edge journal in %s: %s", self.directory, exc)
            return
        # Totals at each of the last notes, to count what came in the last second.
        window = max(1, round(1.0 / self.interval))
        history = [self.recorder.stats.recorded] * window
        while not stop.is_set():
            recorded = self.recorder.stats.recorded
            try:
                self._write(recorded - history[0])
            except OSError as exc:
                log.warning("cannot write the edge journal %s: %s", self.path, exc)
            history = [*history[1:], recorded]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def remove(self) -> None:
        """After a clean stop (every event written): nothing was lost."""
        with contextlib.suppress(OSError):
            self.path.unlink()
