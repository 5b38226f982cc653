"""The open-file limit an edge needs: every connection is a file descriptor.

Linux starts most processes with a soft RLIMIT_NOFILE of 1024, far below what an edge holds
open; the hard limit (what the process may raise itself to) is usually much higher. An edge
raises its soft limit to the hard one at start, and bounds its connections below what remains
after the descriptors it needs for other things (listeners, database connections, logs).
"""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger(__name__)

# Descriptors kept for what is not a client connection: listening sockets, the database pool
# and its LISTEN connection, the metrics listener, log files, the event loop's own.
RESERVED_DESCRIPTORS = 256


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft
    wanted = hard
    if hard == resource.RLIM_INFINITY:
        # Linux refuses an infinite RLIMIT_NOFILE; fs.nr_open is the real ceiling.
        wanted = _nr_open()
        if soft != resource.RLIM_INFINITY and soft >= wanted:
            return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        logger.warning("cannot raise the open-file limit from %d to %d: %s", soft, wanted, exc)
        return soft
    logger.info("open-file limit raised from %d to %d", soft, wanted)
    return wanted


def connection_budget(max_connections: int, open_files: int) -> int:
    """The connections one edge process may hold: `max_connections` (0: no bound of its own),
    but never more than the open-file limit leaves after the reserved descriptors."""
    room = max(open_files - RESERVED_DESCRIPTORS, 64)
    if max_connections == 0:
        return room
    if max_connections > room:
        logger.warning(
            "edge_max_connections is %d but the open-file limit (%d) leaves room for %d: "
            "raise the hard limit (LimitNOFILE= in the systemd unit, ulimit -Hn) to hold more",
            max_connections,
            open_files,
            room,
        )
        return room
    return max_connections


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 1024 * 1024
