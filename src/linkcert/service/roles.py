"""Which parts one process runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Roles:
    """What one process runs. A fleet runs each role in processes of its own."""

    worker: bool = True
    edge: bool = True
    api: bool = True
    # Several edge processes on one machine share the listening ports (SO_REUSEPORT).
    share_ports: bool = False
