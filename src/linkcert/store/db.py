"""Opening the database: one engine per process, migrations by Alembic, short sessions.

SQLite is the embedded default and runs in WAL mode with a busy timeout so that the edge's
reads never wait on the worker's writes. PostgreSQL is chosen by the URL alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*(None|"[^"]*")', re.MULTILINE)
# Connections one process keeps to PostgreSQL (a listener for notifications comes on top).
POSTGRES_POOL_SIZE = 10


class StoreError(Exception):
    """The database cannot be opened or is not at the expected schema version."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:///FILE or postgresql+psycopg://...)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # A fixed pool, no overflow: a burst of threads (an edge answering a burst of
            # validations, a worker finishing many orders) waits a few milliseconds for a
            # connection instead of opening more. Overflow connections are opened and closed
            # per burst (a new server process each time), and with 30 per process a fleet of
            # three processes could exhaust PostgreSQL's default of 100 connections, which
            # then refuses the edge's challenge lookups and fails validations.
            engine = create_engine(
                url, pool_pre_ping=True, pool_size=POSTGRES_POOL_SIZE, max_overflow=0
            )
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"database_url is not usable: {exc}") from None
    return engine


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


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Store:
    """The database of one linkcert installation."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def current_revision(self) -> str | None:
        """The schema version recorded in the database; None before the first migration."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)

    def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent)."""
        head = head_revision()
        try:
            if head is not None and self.current_revision() == head:
                return
        except OperationalError as exc:
            raise StoreError(f"cannot migrate the database: {exc.orig}") from None
        from alembic import command

        config = alembic_config(self.url)
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise StoreError(f"cannot migrate the database: {exc.orig}") from None

    def schema_is_current(self) -> bool:
        head = head_revision()
        if head is None:
            from alembic.script import ScriptDirectory

            head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        return self.current_revision() == head

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
