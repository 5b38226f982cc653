"""HTTP responses as bytes: the fixed ones built once, the rest assembled with little work."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple


class Response(NamedTuple):
    """A status, header lines (each ending in CRLF, without Content-Length) and a body."""

    status: int
    headers: bytes
    body: bytes = b""


_STATUS_LINES = {
    status: f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")
    for status, reason in {
        200: "OK",
        302: "Found",
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        408: "Request Timeout",
        413: "Content Too Large",
        414: "URI Too Long",
        421: "Misdirected Request",
        431: "Request Header Fields Too Large",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.items()
}
# Reason phrases for any status an origin may answer with (proxy mode).
REASONS = {int(status): status.phrase.encode("ascii") for status in HTTPStatus}
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"


class _DateLine:
    """The Date header, formatted at most once a second."""

    __slots__ = ("line", "second")

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def current(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self.second:
            self.second = second
            self.line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")
        return self.line


_date = _DateLine()


def date_line() -> bytes:
    """`Date: ...\r\n` for now."""
    return _date.current()


def render(response: Response, *, head_only: bool, keep_alive: bool, http10: bool) -> bytes:
    """The bytes on the wire. HTTP/1.0 clients are told explicitly when the connection stays."""
    connection = (_KEEP_ALIVE if http10 else b"") if keep_alive else _CLOSE
    body = response.body
    return b"".join(
        (
            _STATUS_LINES[response.status],
            _date.current(),
            response.headers,
            b"Content-Length: %d\r\n" % len(body),
            connection,
            b"\r\n",
            b"" if head_only else body,
        )
    )


_NO_STORE = b"Cache-Control: no-store\r\n"
_TEXT = b"Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"
_HTML = b"Content-Type: text/html; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"


def _page(title: str, message: str) -> bytes:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>\n"
        '<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; '
        'padding: 0 1rem; line-height: 1.5">'
        f"<h1>{title}</h1><p>{message}</p></body></html>\n"
    ).encode()


# A 1×1 transparent GIF: header, screen descriptor with a two-colour table, a graphic control
# extension marking colour 0 transparent, one image of one pixel, trailer.
TRANSPARENT_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00"
    b"\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00"
    b"\x02\x02D\x01\x00;"
)

LINK_NOT_VALID = Response(
    404,
    _HTML + _NO_STORE,
    _page(
        "This link is not valid",
        "The link you followed is incomplete or has been changed. If it came in an email, try "
        "clicking it in the email itself rather than copying it.",
    ),
)
NOT_FOUND = Response(404, _TEXT, b"Not found\n")
HEALTHY = Response(200, _TEXT + _NO_STORE, b"ok\n")
OPEN_PIXEL = Response(200, b"Content-Type: image/gif\r\n" + _NO_STORE, TRANSPARENT_GIF)
BAD_REQUEST = Response(400, _TEXT, b"Bad request\n")
MISSING_HOST = Response(400, _TEXT, b"Bad request: a Host header is required\n")
METHOD_NOT_ALLOWED = Response(405, b"Allow: GET, HEAD\r\n" + _TEXT, b"Only GET and HEAD\n")
REQUEST_TIMEOUT = Response(408, _TEXT, b"Request timeout\n")
BODY_TOO_LARGE = Response(413, _TEXT, b"Request bodies are not accepted\n")
MISDIRECTED = Response(421, _TEXT, b"This connection is for another host name\n")
HEADERS_TOO_LARGE = Response(431, _TEXT, b"Request headers too large\n")
URI_TOO_LONG = Response(414, _TEXT, b"Request target too long\n")
REQUEST_BODY_TOO_LARGE = Response(413, _TEXT, b"Request body too large\n")
BAD_GATEWAY = Response(
    502,
    _HTML + _NO_STORE,
    _page(
        "This link is not answering",
        "The server behind this address could not be reached. Please try again in a moment.",
    ),
)
GATEWAY_TIMEOUT = Response(
    504,
    _HTML + _NO_STORE,
    _page(
        "This link is taking too long",
        "The server behind this address did not answer in time. Please try again in a moment.",
    ),
)
INTERNAL_ERROR = Response(500, _TEXT + _NO_STORE, b"Internal server error\n")
UNAVAILABLE = Response(
    503, b"Retry-After: 5\r\n" + _TEXT + _NO_STORE, b"Temporarily unavailable, retry shortly\n"
)


def redirect(location: bytes) -> Response:
    return Response(302, b"Location: " + location + b"\r\n" + _NO_STORE)


def key_authorization(body: bytes) -> Response:
    return Response(200, b"Content-Type: text/plain\r\n" + _NO_STORE, body)


def render_error_and_close(response: Response) -> bytes:
    """An error that ends the connection (the request could not be read to its end)."""
    return render(response, head_only=False, keep_alive=False, http10=False)
