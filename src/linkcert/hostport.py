"""`HOST:PORT` text, the one way every setting and listener spells an address.

`127.0.0.1:8080`, `[::1]:8080` (an IPv6 host goes in brackets), and where a default port
applies a bare host (`192.0.2.53`, or an IPv6 address without brackets: `2001:db8::53`).
"""

from __future__ import annotations


class HostPortError(ValueError):
    """Not `HOST:PORT`; `reason` says what is wrong, without the text itself."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r}: {reason}")
        self.reason = reason


def parse_host_port(
    value: str,
    *,
    default_port: int | None = None,
    allow_empty_host: bool = False,
    min_port: int = 0,
) -> tuple[str, int]:
    """Split `HOST:PORT`, `[V6]:PORT` or (with a default port) a bare host.

    `allow_empty_host` accepts `:PORT` (all IPv4 interfaces, for a listener). Port 0 (any
    free port) is accepted unless `min_port` says otherwise.
    """
    text = value.strip()
    host: str
    port_text: str | None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise HostPortError(value, "missing ']' after an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise HostPortError(value, "expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None  # a bare host, or an IPv6 address without a port
    if not host and not (allow_empty_host and port_text is not None):
        raise HostPortError(value, "the host is empty")
    if port_text is None:
        if default_port is None:
            if ":" in host:
                raise HostPortError(value, "expected HOST:PORT; put an IPv6 host in brackets")
            raise HostPortError(value, "expected HOST:PORT")
        return host, default_port
    if not port_text.isdigit() or not min_port <= int(port_text) <= 65535:
        raise HostPortError(value, f"the port must be a number from {min_port} to 65535")
    return host, int(port_text)
