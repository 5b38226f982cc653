"""Reading one domain's status and events without SQLAlchemy: for the short commands.

`linkcert domain status` runs in scripts and loops, where importing SQLAlchemy's ORM and the
models costs more than the rest of the command. This reads exactly the rows the status is
built from, with the standard library's `sqlite3` for a SQLite store and psycopg for
PostgreSQL, and builds the status with the same functions as the store's own path
(`linkcert.status`). It never writes.

`open_reader(url, display_url)` checks the database as `Store.check_ready` does, with the
same messages; it returns None for a URL it does not read (another driver, an in-memory
database), for the caller to use the store instead.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from linkcert.names import lookup_form
from linkcert.status import DomainStatus, NotFound, event_json, owner_status
from linkcert.store.schema import (
    StoreError,
    cannot_open,
    check_revision,
    head_revision,
    missing_file,
    sqlite_path,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

_POSTGRES_PREFIXES = ("postgresql://", "postgresql+psycopg://")


@dataclass(frozen=True)
class _Domain:
    id: int
    name: str
    unicode_name: str
    account_id: int | None
    dns_state: str
    cert_state: str
    problems: list[Any]
    next_attempt_at: datetime | None
    failure_class: str | None
    wanted: bool
    link_epoch: int
    current_certificate_id: int | None
    dcv_state: str | None = None
    dcv_found: str | None = None


@dataclass(frozen=True)
class _Account:
    name: str
    dns_label: str | None
    dcv_secret: str | None = None


@dataclass(frozen=True)
class _Certificate:
    issuer: str
    not_before: datetime
    not_after: datetime
    renew_at: datetime | None
    ari_next_check_at: datetime | None
    order_id: int | None


class StatusReader:
    """One open connection to read domains' status and events from."""

    def __init__(
        self, connection: Any, *, sqlite: bool, errors: tuple[type[Exception], ...]
    ) -> None:
        self._connection = connection
        self._sqlite = sqlite
        # What the driver raises for a database it cannot read.
        self.errors = errors

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> StatusReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- values as the store's column types give them ---------------------------------------

    def _time(self, value: Any) -> datetime | None:
        # SQLite keeps text without an offset, always UTC (see models.UTCDateTime).
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def _json(self, value: Any) -> Any:
        # SQLite keeps JSON as text; psycopg has already decoded it.
        return json.loads(value) if self._sqlite and isinstance(value, str | bytes) else value

    def _rows(self, sql: str, *params: Any) -> Sequence[Sequence[Any]]:
        if not self._sqlite:
            sql = sql.replace("?", "%s")
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, params)
            rows: Sequence[Sequence[Any]] = cursor.fetchall()
        finally:
            cursor.close()
        if not self._sqlite:
            self._connection.rollback()  # end the read transaction: nothing held between reads
        return rows

    # --- what the commands read ---------------------------------------------------------------

    def schema_revision(self) -> str | None:
        if self._sqlite:
            exists = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            exists = (
                "SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relname = ? "
                "AND pg_catalog.pg_table_is_visible(c.oid) AND c.relkind IN ('r', 'p', 'v', 'f')"
            )
        if not self._rows(exists, "alembic_version")[0][0]:
            return None
        rows = self._rows("SELECT version_num FROM alembic_version")
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def _domain(self, name: str) -> _Domain:
        rows = self._rows(
            "SELECT id, name, unicode_name, account_id, dns_state, cert_state, problems, "
            "next_attempt_at, failure_class, wanted, link_epoch, current_certificate_id, "
            "dcv_state, dcv_found FROM domains WHERE name = ?",
            lookup_form(name),
        )
        if not rows:
            raise NotFound(f"no domain {name!r}")
        r = rows[0]
        return _Domain(
            id=r[0],
            name=r[1],
            unicode_name=r[2],
            account_id=r[3],
            dns_state=r[4],
            cert_state=r[5],
            problems=self._json(r[6]),
            next_attempt_at=self._time(r[7]),
            failure_class=r[8],
            wanted=bool(r[9]),
            link_epoch=r[10],
            current_certificate_id=r[11],
            dcv_state=r[12],
            dcv_found=r[13],
        )

    def domain_status(self, name: str) -> DomainStatus:
        """The status `linkcert.domains.domain_status` gives, as an operator sees it."""
        domain = self._domain(name)
        account = None
        if domain.account_id:
            rows = self._rows(
                "SELECT name, dns_label, dcv_secret FROM accounts WHERE id = ?",
                domain.account_id,
            )
            account = _Account(*rows[0]) if rows else None
        cert = None
        if domain.current_certificate_id:
            rows = self._rows(
                "SELECT issuer, not_before, not_after, renew_at, ari_next_check_at, order_id "
                "FROM certificates WHERE id = ?",
                domain.current_certificate_id,
            )
            if rows:
                r = rows[0]
                not_before, not_after = self._time(r[1]), self._time(r[2])
                assert not_before is not None and not_after is not None
                cert = _Certificate(
                    r[0], not_before, not_after, self._time(r[3]), self._time(r[4]), r[5]
                )
        info = None
        if cert is not None and cert.order_id:
            rows = self._rows("SELECT info FROM orders WHERE id = ?", cert.order_id)
            info = self._json(rows[0][0]) if rows else None
        return owner_status(domain, account, cert, info)

    def domain_events(self, name: str, limit: int = 100) -> list[dict[str, Any]]:
        """The timeline `linkcert.domains.domain_events` gives: oldest first."""
        domain = self._domain(name)
        rows = self._rows(
            "SELECT at, kind, dns_state, cert_state, message, detail FROM events "
            "WHERE domain_id = ? ORDER BY id DESC LIMIT ?",
            domain.id,
            limit,
        )
        events = []
        for at, kind, dns_state, cert_state, message, detail in reversed(rows):
            when = self._time(at)
            assert when is not None
            events.append(
                event_json(when, kind, dns_state, cert_state, message, self._json(detail))
            )
        return events


def open_reader(url: str, display_url: str) -> StatusReader | None:
    """A reader of the database at `url`, checked as `Store.check_ready` checks it (raising
    `DatabaseNotReady` with the same messages); None for a URL it does not read."""
    path = sqlite_path(url)
    if path is not None and url.startswith("sqlite:///"):
        if not Path(path).is_file():
            raise missing_file(display_url)
        try:
            connection = sqlite3.connect(
                f"file:{quote(str(Path(path)))}?mode=rw", uri=True, timeout=30
            )
            connection.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise cannot_open(display_url, exc, str(exc)) from None
        reader = StatusReader(connection, sqlite=True, errors=(sqlite3.Error,))
    elif url.startswith(_POSTGRES_PREFIXES):
        import psycopg

        conninfo = "postgresql://" + url.split("://", 1)[1]
        try:
            pg_connection = psycopg.connect(conninfo)
            pg_connection.read_only = True
        except psycopg.Error as exc:
            raise cannot_open(display_url, exc, str(exc)) from None
        reader = StatusReader(pg_connection, sqlite=False, errors=(psycopg.Error,))
    else:
        return None
    try:
        current = reader.schema_revision()
        head = head_revision()
        if head is None:
            reader.close()
            return None  # the migrations do not make one chain: the store asks Alembic
        check_revision(display_url, current, head)
    except reader.errors as exc:
        reader.close()
        raise cannot_open(display_url, exc, str(exc)) from None
    except StoreError:
        reader.close()
        raise
    return reader
