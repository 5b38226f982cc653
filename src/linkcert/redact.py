"""URLs as logs and `config show` print them: no password, no secret path or token.

Two ways, for two kinds of URL:

- `masked_url` for URLs whose shape an operator needs to read (the database, the ACME
  directory): the password in the user part and the value of every query parameter whose
  name says it is a secret are replaced by a mask; the rest stays.
- `shown_url` for URLs that are themselves credentials (webhooks: many receivers put the
  secret in the path, like `/services/T0/B0/XXXX`, or in a `?token=`): only the scheme, the
  host, the port and the first path segment are kept; the rest of the path becomes `/…` and
  a query `?…`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MASK = "********"
# Query parameter names that carry secrets (compared in lower case, `-` read as `_`).
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "sslpassword",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "auth",
        "signature",
        "sig",
    }
)


def _is_secret_name(name: str) -> bool:
    name = name.lower().replace("-", "_")
    return name in SECRET_PARAMETERS or name.endswith(("password", "_secret", "_token"))


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return host + port


def masked_url(url: str) -> str:
    """`url` with the password of its user part and its secret query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # not a URL we can take apart: show none of it
    netloc = parts.netloc
    if "@" in netloc:
        creds, _, _ = netloc.rpartition("@")
        user, colon, _ = creds.partition(":")
        netloc = f"{user}{':' + MASK if colon else ''}@{_host_port(url)}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret_name(name) for name, _ in pairs):
            query = urlencode(
                [(n, MASK if _is_secret_name(n) else v) for n, v in pairs],
                safe="*/:",
                quote_via=quote,
            )
    if netloc == parts.netloc and query == parts.query and not parts.fragment:
        # Nothing to mask: as given. Taken apart and put together again, `sqlite:////abs/path`
        # (an empty host) would lose two of its slashes.
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def shown_url(url: str) -> str:
    """`url` reduced to scheme, host, port and first path segment, for URLs that carry
    secrets in their path or query (webhooks)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    segments = parts.path.split("/")
    path = "/" + segments[1] if len(segments) > 1 else ""
    if len(segments) > 2:
        path += "/…"
    hidden = "?…" if parts.query else ""
    return f"{parts.scheme}://{_host_port(url)}{path}{hidden}"
