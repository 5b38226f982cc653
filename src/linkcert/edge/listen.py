"""Listening sockets from `host:port` text, or taken as they are."""

from __future__ import annotations

import socket

ListenSpec = str | socket.socket
"""`"host:port"` (`"[::]:443"`, `":80"` for all IPv4 interfaces, port 0 for any free port), or
an already bound socket (say, one of several processes sharing a port with SO_REUSEPORT)."""


def parse_address(text: str) -> tuple[str, int]:
    """`"127.0.0.1:8080"` → `("127.0.0.1", 8080)`; IPv6 hosts go in brackets."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address {text!r} must look like host:port, e.g. 0.0.0.0:443")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {text!r}: put an IPv6 host in brackets, [::]:443")
    return host, int(port_text)


def open_listener(spec: ListenSpec, *, reuse_port: bool, backlog: int) -> socket.socket:
    """A bound, listening TCP socket for `spec`."""
    if isinstance(spec, socket.socket):
        if spec.type != socket.SOCK_STREAM:
            raise ValueError("the edge needs a TCP (SOCK_STREAM) socket to listen on")
        spec.listen(backlog)
        return spec
    host, port = parse_address(spec)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog, reuse_port=reuse_port)
