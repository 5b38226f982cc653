"""Keyset paging: each page links to the next by the last key it holds.

Lists of accounts and brand requests carry the last key in plain sight (`after=`). The list of
domains carries it in an opaque cursor instead, bound to the query it came from (the filters
and who asks): a cursor used with other filters, or by another account, is refused rather than
quietly answered with rows it was not made for. The cursor holds a position, never a right:
which rows a token may see is decided by the token, whatever the cursor says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from urllib.parse import urlencode

from starlette.requests import Request

CURSOR_VERSION = 1
# Long enough for a 253-character name and the query's digest, base64-encoded.
MAX_CURSOR_LENGTH = 512


class BadCursor(ValueError):
    """A cursor that was not made by this list for this query."""


def next_page(request: Request, items_on_page: int, limit: int, last_key: str | None) -> str | None:
    """The URL (path and query) of the page after this one, or None if this one is the last.

    A full page may be followed by an empty one; that costs one request and saves a count.
    """
    if items_on_page < limit or last_key is None:
        return None
    params = dict(request.query_params)
    params["after"] = last_key
    params["limit"] = str(limit)
    return f"{request.url.path}?{urlencode(params)}"


def query_digest(query: Mapping[str, object]) -> str:
    """A short digest of what a list was asked for (its filters and its viewer)."""
    canonical = json.dumps(
        {k: v for k, v in sorted(query.items()) if v not in (None, "")},
        separators=(",", ":"),
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def encode_cursor(last_key: str, query: Mapping[str, object]) -> str:
    """An opaque cursor for the rows after `last_key` of the list `query` describes."""
    payload = json.dumps([CURSOR_VERSION, last_key, query_digest(query)], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, query: Mapping[str, object]) -> str:
    """The last key a cursor holds; BadCursor if it is not one of this list's, for this query."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("the cursor is longer than any this list makes")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, last_key, digest = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise BadCursor("the cursor is not one this list made") from None
    if version != CURSOR_VERSION or not isinstance(last_key, str) or not isinstance(digest, str):
        raise BadCursor("the cursor is not one this list made")
    if digest != query_digest(query):
        raise BadCursor(
            "the cursor was made for other filters (or another token): page with the same "
            "filters as the first page"
        )
    return last_key


def cursor_page(
    request: Request, cursor: str, *, drop: tuple[str, ...] = ("after", "cursor")
) -> str:
    """The URL of the page that `cursor` starts, with the request's other parameters."""
    params = {k: v for k, v in request.query_params.items() if k not in drop}
    params["cursor"] = cursor
    return f"{request.url.path}?{urlencode(params)}"
