"""Indexes that keep the store's frequent queries proportional to their answer, not the fleet."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect

from linkcert.edge import CertificateCache
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.service.feeds import StoreFeeds
from linkcert.store import Base, Store
from linkcert.store.db import alembic_config


def _domain_indexes(store: Store) -> set[str]:
    return {str(index["name"]) for index in inspect(store.engine).get_indexes("domains")}


def test_the_current_certificate_index_is_migrated_both_ways(store: Store) -> None:
    assert "ix_domains_current_certificate" in _domain_indexes(store)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "ix_domains" in repr(d)] == []

    config = alembic_config(store.url)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
    assert "ix_domains_current_certificate" not in _domain_indexes(store)
    store.migrate()
    assert "ix_domains_current_certificate" in _domain_indexes(store)


def test_the_edge_finds_new_certificates_through_the_index(tmp_path: Path) -> None:
    """The edge's once-a-second look goes from new certificates to their domains by index,
    instead of reading every domain (SQLite shows its plan whatever the table sizes)."""
    store = Store(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    store.migrate()
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    feeds = StoreFeeds(store, MasterKeys.parse(generate_master_key("t")), CertificateCache())
    event.listen(store.engine, "before_cursor_execute", record)
    try:
        assert feeds._newer_than(0) == {}
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    query = next(s for s in statements if "current_certificate_id" in s)
    with store.engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + query, (0,)).all()
    steps = " / ".join(str(row[-1]) for row in plan)
    assert "ix_domains_current_certificate" in steps, steps
    assert "SCAN domains" not in steps, steps
    store.close()
