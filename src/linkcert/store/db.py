"""Opening the database: one engine per process, migrations by Alembic, short sessions.

SQLite is the embedded default and runs in WAL mode with a busy timeout so that the edge's
reads never wait on the worker's writes. PostgreSQL is chosen by the URL alone.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from linkcert.config import mask_url_password
from linkcert.store.schema import MIGRATIONS as MIGRATIONS
from linkcert.store.schema import DatabaseNotReady as DatabaseNotReady
from linkcert.store.schema import StoreError as StoreError
from linkcert.store.schema import cannot_open, check_revision, missing_file
from linkcert.store.schema import head_revision as head_revision
from linkcert.store.schema import sqlite_path as sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("linkcert.store")

# Connections one process keeps to PostgreSQL (a listener for notifications comes on top).
POSTGRES_POOL_SIZE = 10


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
            path = sqlite_path(url)
            options: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
            if path is not None:
                # Opened read-write, never created: a database file that is missing (deleted, a
                # wrong path, an unmounted volume) must not quietly become a new, empty one.
                # Only Store.migrate creates it.
                options["creator"] = _sqlite_opener(path)
            engine = create_engine(url, **options)
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


def _sqlite_opener(path: str) -> Any:
    target = f"file:{quote(str(Path(path)))}?mode=rw"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(target, uri=True, timeout=30, check_same_thread=False)

    return connect


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

    @property
    def display_url(self) -> str:
        """The URL fit to print, its password masked."""
        return mask_url_password(self.url)

    def migrate(self) -> bool:
        """Create the database if need be and bring its schema to the newest version
        (idempotent). The one place that creates a SQLite file; True if it did."""
        path = sqlite_path(self.url)
        created = False
        try:
            if path is not None and not Path(path).exists():
                created = True
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                sqlite3.connect(path).close()
                # Said aloud: on a volume that failed to mount this is the moment to notice.
                log.warning("created a new, empty database at %s", self.display_url)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot create the database {self.display_url}: {exc}") from None
        try:
            if self.schema_revision() == self.head():
                return created  # current: no need to load Alembic
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
        return created

    def check_ready(self) -> None:
        """Raise DatabaseNotReady unless the database exists and its schema is current.

        Never creates or changes anything: for every command but `linkcert migrate` and
        `linkcert serve`, which may create the database.
        """
        url = self.display_url
        path = sqlite_path(self.url)
        if path is not None and not Path(path).is_file():
            raise missing_file(url)
        try:
            current = self.schema_revision()
        except OperationalError as exc:
            raise cannot_open(url, exc.orig, str(exc)) from None
        check_revision(url, current, self.head())

    def schema_revision(self) -> str | None:
        """The schema version stored in the database; None if it has none."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)

    def head(self) -> str | None:
        """The schema version this release needs."""
        head = head_revision()
        if head is None:
            from alembic.script import ScriptDirectory

            head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        return head

    def schema_is_current(self) -> bool:
        return self.schema_revision() == self.head()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
