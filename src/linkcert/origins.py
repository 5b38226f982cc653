"""Origin addresses for proxy mode: `http://HOST:PORT` or `https://HOST:PORT`.

Kept apart from the edge so that settings, the API and the store can check an address without
loading the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit

Scheme = Literal["http", "https"]


@dataclass(frozen=True, slots=True)
class OriginSpec:
    scheme: Scheme
    host: str
    port: int

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_origin(text: str) -> OriginSpec:
    """`http://HOST:PORT` or `https://HOST:PORT` (the port may be left out: 80 or 443).

    Raises ValueError saying what is wrong; paths, queries and credentials are refused, since
    the request's own path is what goes to the origin.
    """
    value = text.strip()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r}: an origin is http://HOST:PORT or https://HOST:PORT")
    if not parts.hostname:
        raise ValueError(f"{text!r}: the host is missing")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r}: credentials do not belong in an origin address")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{text!r}: give only scheme, host and port; paths are passed on as sent")
    scheme = cast(Scheme, parts.scheme)
    if port is None:
        port = 443 if scheme == "https" else 80
    if port == 0:
        raise ValueError(f"{text!r}: port 0 is not an origin's port")
    return OriginSpec(scheme, parts.hostname.lower(), port)
