"""Running linkcert's fleet processes (`linkcert worker`, `linkcert edge`) as real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


class Process:
    """One `linkcert ROLE` child with its output in a log file."""

    def __init__(
        self, role: str, env: dict[str, str], log_dir: Path, name: str, *args: str
    ) -> None:
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "linkcert", role, *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """kill -9: no chance to clean up, as when a machine dies."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()
        return self.popen.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def child_pids(pid: int) -> list[int]:
    """The live child processes of `pid`, read from /proc (zombies and exited ones left out)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except FileNotFoundError:
            continue  # it just exited
        if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie waits to be reaped
            found.append(int(child))
    return found
