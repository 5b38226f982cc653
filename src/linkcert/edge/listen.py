"""Listening sockets from `host:port` text, or taken as they are."""

from __future__ import annotations

import functools
import logging
import socket
from pathlib import Path

from linkcert.hostport import HostPortError, parse_host_port

logger = logging.getLogger(__name__)

# Linux 5.14 and later: when a listener of a SO_REUSEPORT group closes, hand the connections in
# its accept queue to another listener of the group instead of resetting them.
MIGRATE_SYSCTL = Path("/proc/sys/net/ipv4/tcp_migrate_req")

ListenSpec = str | socket.socket
"""`"host:port"` (`"[::]:443"`, `":80"` for all IPv4 interfaces, port 0 for any free port), or
an already bound socket (say, one of several processes sharing a port with SO_REUSEPORT)."""


def parse_address(text: str) -> tuple[str, int]:
    """`"127.0.0.1:8080"` → `("127.0.0.1", 8080)`; IPv6 hosts go in brackets; `":80"` is every
    IPv4 interface."""
    try:
        return parse_host_port(text, allow_empty_host=True)
    except HostPortError as exc:
        raise ValueError(
            f"listen address {text!r} must look like host:port, e.g. 0.0.0.0:443 ({exc.reason})"
        ) from None


def open_listener(spec: ListenSpec, *, reuse_port: bool, backlog: int) -> socket.socket:
    """A bound, listening TCP socket for `spec`."""
    if isinstance(spec, socket.socket):
        if spec.type != socket.SOCK_STREAM:
            raise ValueError("the edge needs a TCP (SOCK_STREAM) socket to listen on")
        spec.listen(backlog)
        sock = spec
    else:
        host, port = parse_address(spec)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server(
            (host, port), family=family, backlog=backlog, reuse_port=reuse_port
        )
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        check_queued_connections_migrate()
    return sock


def queued_connections_migrate() -> bool | None:
    """Whether the kernel hands a closing listener's queued connections to the others sharing
    its port (None: this system does not say, as before Linux 5.14)."""
    try:
        return MIGRATE_SYSCTL.read_text().strip() != "0"
    except OSError:
        return None


@functools.cache
def check_queued_connections_migrate() -> None:
    """Warn, once per process, when a stopping edge would reset the connections it queued.

    Edges sharing a port take turns in a rolling restart: while one stops, the others serve.
    But connections the kernel has already queued on the stopping edge's socket, not yet
    accepted, are reset when that socket closes, unless the kernel migrates them.
    """
    if queued_connections_migrate() is False:
        logger.warning(
            "net.ipv4.tcp_migrate_req is 0: when an edge process stops, the connections "
            "waiting in its accept queue are reset instead of being handed to the other edge "
            "processes on the same port. Set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1) "
            "for restarts that drop no connection; see docs/deploy.md."
        )
