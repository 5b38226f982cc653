"""When the database cannot do its part: which kind of trouble an exception means.

A database that is read-only, full, locked past its timeout or unreachable is a condition of
the installation, not a bug: the API answers 503 with Retry-After and a stable code, the pages
say so in words, and the metrics count it. Anything else stays an internal error.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout


@dataclass(frozen=True)
class StoreUnavailable:
    """One kind of database trouble: `code` is stable (API `code`, metric label)."""

    code: str
    detail: str  # for operators and API clients
    retry_after: int  # seconds


READ_ONLY = StoreUnavailable(
    "read_only",
    "The database is read-only, so changes cannot be saved right now.",
    60,
)
DISK_FULL = StoreUnavailable(
    "disk_full",
    "The database's disk is full, so changes cannot be saved right now.",
    60,
)
LOCKED = StoreUnavailable(
    "locked",
    "The database stayed locked by other work past its timeout.",
    5,
)
UNREACHABLE = StoreUnavailable(
    "unreachable",
    "The database cannot be reached.",
    10,
)
KINDS = (READ_ONLY, DISK_FULL, LOCKED, UNREACHABLE)

# SQLite's messages (sqlite3 carries no code on Python 3.11), lower case.
_SQLITE_MESSAGES = (
    ("readonly database", READ_ONLY),
    ("read-only", READ_ONLY),
    ("database or disk is full", DISK_FULL),
    ("database is locked", LOCKED),
    ("database table is locked", LOCKED),
    ("unable to open database file", UNREACHABLE),
    ("disk i/o error", UNREACHABLE),
)
# PostgreSQL's SQLSTATE codes, by their class (the first two characters) or in full.
_SQLSTATES = {
    "25006": READ_ONLY,  # read_only_sql_transaction (a standby, or read-only by setting)
    "53100": DISK_FULL,
    "53": DISK_FULL,  # insufficient resources (disk, memory, connections)
    "55P03": LOCKED,  # lock_not_available
    "57014": LOCKED,  # query_canceled, as a statement or lock timeout does
    "08": UNREACHABLE,  # connection exceptions
    "57P01": UNREACHABLE,  # admin_shutdown
    "57P02": UNREACHABLE,  # crash_shutdown
    "57P03": UNREACHABLE,  # cannot_connect_now
}


def classify(error: BaseException) -> StoreUnavailable | None:
    """The kind of database trouble `error` is, or None if it is something else."""
    if isinstance(error, PoolTimeout):
        return LOCKED
    if not isinstance(error, DBAPIError):
        return None
    if error.connection_invalidated:
        return UNREACHABLE
    original = error.orig
    state = getattr(original, "sqlstate", None)
    if isinstance(state, str):
        return _SQLSTATES.get(state) or _SQLSTATES.get(state[:2])
    text = str(original).lower()
    for fragment, kind in _SQLITE_MESSAGES:
        if fragment in text:
            return kind
    if (
        type(original).__module__.startswith("psycopg")
        and "OperationalError" in type(original).__name__
    ):
        return UNREACHABLE  # no SQLSTATE: the server was never reached
    return None
