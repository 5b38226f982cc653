"""INSERT … ON CONFLICT DO NOTHING on both engines linkcert runs on.

Rows that several processes may create at once (a rate bucket, a notification's dedup key, a
period's TLS ticket key) are inserted this way rather than by catching IntegrityError: on
PostgreSQL a failed insert aborts the caller's whole transaction, and with it whatever else
that transaction was doing. The first insert wins; the others change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session


def insert_unless_present(
    session: Session,
    model: type[DeclarativeBase],
    values: Mapping[str, Any],
    conflict_on: Sequence[str] | None = None,
) -> Insert:
    """The statement inserting `values` into `model`'s table, doing nothing on a conflict (on
    the unique columns `conflict_on`, or on any constraint). Execute it, perhaps after
    `.returning(...)`."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return (
            postgresql.insert(model)
            .values(**values)
            .on_conflict_do_nothing(index_elements=conflict_on)
        )
    if dialect == "sqlite":
        return (
            sqlite.insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict_on)
        )
    raise RuntimeError(f"linkcert runs on PostgreSQL and SQLite, not on {dialect}")
