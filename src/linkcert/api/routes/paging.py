"""Keyset paging: each page links to the next by the last key it holds."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request


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
