"""What the store's schema is and whether a database holds it, without loading SQLAlchemy.

Shared by the store (`Store.check_ready`) and the lean read path of the short commands
(`linkcert.store.reader`), so that both say the same thing about a missing or outdated
database.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*(None|"[^"]*")', re.MULTILINE)


class StoreError(Exception):
    """The database cannot be opened or is not at the expected schema version."""


class DatabaseNotReady(StoreError):
    """There is no linkcert database at the configured URL, or its schema is not current.

    The message is one line that names the URL (password masked) and what to run.
    """


def sqlite_path(url: str) -> str | None:
    """The file of a `sqlite:///FILE` URL; None for PostgreSQL and in-memory databases."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1] if "///" in url else ""
    return path if path and path != ":memory:" else None


@cache
def head_revision() -> str | None:
    """The newest migration's id, read from the files without loading Alembic.

    Alembic takes longer to import than a short command takes to run, so commands see whether
    the schema is current with this and one query, and load Alembic only to migrate. None when
    the files do not make one chain (Alembic then decides).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for kind, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            if value != "None":
                (revisions if kind == "revision" else parents).add(value.strip('"'))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def missing_file(display_url: str) -> DatabaseNotReady:
    return DatabaseNotReady(
        f"no database at {display_url} (the file does not exist): check database_url and "
        "data_dir, or run `linkcert migrate` to create a new one"
    )


def cannot_open(display_url: str, error: BaseException | None, fallback: str) -> DatabaseNotReady:
    """The driver's error, first line only (`fallback` when the driver gave none)."""
    reason = str(error).strip().splitlines()[0] if error is not None else fallback
    return DatabaseNotReady(f"cannot open the database at {display_url}: {reason}")


def check_revision(display_url: str, current: str | None, head: str | None) -> None:
    """Raise DatabaseNotReady unless the stored schema version `current` is `head`."""
    if current is None:
        raise DatabaseNotReady(
            f"the database at {display_url} has no linkcert schema: run `linkcert migrate` first"
        )
    if current != head:
        raise DatabaseNotReady(
            f"the database at {display_url} is at schema {current}, this version needs {head}: "
            "run `linkcert migrate` first"
        )
