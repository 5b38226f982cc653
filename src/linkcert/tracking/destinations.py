"""Destinations as customers write them, in the form tracked links carry.

Email editors and browsers accept `https://例え.jp/ä?q=ü`; a token carries ASCII only. So a
destination is normalized once, when a link is made: the host to its IDNA (punycode, `xn--`)
form, and non-ASCII characters and spaces in the path, query and fragment percent-encoded as
UTF-8, as browsers do. What is stored, signed and redirected to is that form. Anything else a
browser would not read the same way (control characters, a backslash, credentials, a host
that is not one) is refused with a message saying what to change, as `check_destination` does.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import idna

from linkcert.tracking.tokens import InvalidDestination, check_destination

# Left as they are when percent-encoding: every visible ASCII character (so that what is
# already encoded stays as it is); the backslash and control characters are refused later.
_KEEP = "".join(chr(code) for code in range(0x21, 0x7F))


def normalize_destination(url: str) -> str:
    """`url` in the form a tracked link carries, or InvalidDestination saying what is wrong.

    Idempotent: a normalized destination is returned unchanged. An ASCII URL is checked, not
    rewritten.
    """
    if not isinstance(url, str):
        raise InvalidDestination(f"destination must be a string, not {type(url).__name__}")
    if url.isascii() and " " not in url:
        return check_destination(url)
    for position, char in enumerate(url):
        if char < " " or char == "\x7f":
            raise InvalidDestination(
                f"destination URL contains a control character at position {position}: "
                f"remove it ({_shown(url)})"
            )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidDestination(
            f"destination URL cannot be parsed: {exc} ({_shown(url)})"
        ) from None
    netloc = parts.netloc
    if not netloc.isascii():
        netloc = _ascii_netloc(netloc, url)
    try:
        normalized = urlunsplit(
            (
                parts.scheme,
                netloc,
                quote(parts.path, safe=_KEEP),
                quote(parts.query, safe=_KEEP),
                quote(parts.fragment, safe=_KEEP),
            )
        )
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        raise InvalidDestination(
            f"destination URL holds characters that are not valid text ({_shown(url)})"
        ) from None
    return check_destination(normalized)


def _ascii_netloc(netloc: str, url: str) -> str:
    if "@" in netloc:
        raise InvalidDestination(
            f"destination URL must not contain credentials (user:password@) ({_shown(url)})"
        )
    host, colon, port = netloc.rpartition(":")
    if not colon or not port.isdigit():
        host, colon, port = netloc, "", ""
    trailing_dot = host.endswith(".") or host.endswith("。")
    try:
        ascii_host = idna.encode(host.rstrip(".。"), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidDestination(
            f"destination URL has no valid host: {host!r} is not a domain name ({exc}) "
            f"({_shown(url)})"
        ) from None
    return ascii_host + ("." if trailing_dot else "") + colon + port


def _shown(url: str) -> str:
    return repr(url if len(url) <= 80 else url[:77] + "...")
