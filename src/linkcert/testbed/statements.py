"""The SQL statements a block of code runs on the store, for the tests and benchmarks that count
or explain them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import event

from linkcert.store import Store


class Statement(NamedTuple):
    sql: str
    parameters: Any


@contextmanager
def recorded_statements(store: Store, *, this_thread: bool = True) -> Iterator[list[Statement]]:
    """The statements run on `store` inside the block, with their parameters: only this
    thread's by default, so that a background refresh or a server thread does not count."""
    seen: list[Statement] = []
    me = threading.get_ident()

    def record(_conn: object, _cursor: object, sql: str, parameters: Any, *_: object) -> None:
        if not this_thread or threading.get_ident() == me:
            seen.append(Statement(sql, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
