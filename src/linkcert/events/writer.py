"""The event writer: reads the edges' spool segments and inserts their events into the store.

Edges append each click and open to a spool segment of their own before they answer it
(linkcert.tracking.spool). The writer reads every segment of the spool directory from where it
left off, inserts what it finds in large batches (one transaction each: `executemany` on
SQLite, `COPY` on PostgreSQL), and records in the same transaction how far it got in that
segment (table `event_spool_segments`). So whatever stops it, a spooled event is inserted
exactly once: either the transaction committed the events and the new position together, or
neither, and the next pass starts again from the position stored. Event ids are the store's,
given at that insert, so each event gets its id once.

A segment is finished when its edge marked its end (it moved to a new one, or stopped) or when
no edge holds its lock any more (the edge died): the writer inserts what is left, then deletes
the file and its row. The segments of one edge process are taken in order and a later one only
once the earlier is finished, so the ids of one edge's events follow the order of its clicks.

One writer works on a spool directory at a time (`writer.lock` in it); `linkcert serve` and
`linkcert edge` start it as a child process (`python -m linkcert.events.writer`), which exits
when its parent does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from linkcert.events.store import _EVENTS_LOCK, _INSERT_SQL, ClientIpMode, client_ip
from linkcert.store import Domain, Store, utcnow
from linkcert.store.db import sqlite_path
from linkcert.store.inserts import insert_unless_present
from linkcert.store.models import EventSpoolSegment
from linkcert.tracking.spool import (
    CLICK,
    END,
    FLAG_OPEN,
    HEADER_BYTES,
    KIND_CLICK,
    KIND_LINK,
    KIND_TEXT,
    LENGTH,
    LINK,
    LINK_NO_ID,
    LINK_NO_MINT,
    MAGIC,
    SUFFIX,
)

log = logging.getLogger("linkcert.events.writer")

DATABASE_ENV = "LINKCERT_EVENT_WRITER_DATABASE_URL"
BATCH = 20_000
LOCK_NAME = "writer.lock"

_COPY_SQL = (
    "COPY link_events (domain, account_id, kind, data, link_id, destination, at, minted_at, "
    "client_ip, user_agent, machine, token_version, epoch) FROM STDIN"
)

# (domain, data, link id, destination, mint time, token version, epoch) by link part.
_Link = tuple[str, bytes, int | None, str, int | None, int, int]


@dataclass
class _Segment:
    """What the writer knows of a segment: how far it has inserted it (`position`), and the
    values defined before that point (index 0: none)."""

    position: int
    values: list[Any]
    stored: int | None = None  # the position in its row, None without a row
    seen: int = 0  # how far whole records reached at the last pass (read when trailing)


@dataclass
class _Parsed:
    rows: list[tuple[Any, ...]]  # as _INSERT_SQL takes them, account_id still None
    position: int
    finished: bool  # the END mark was read


# CPUs whose stores other processes see in program order. Elsewhere (ARM, POWER, RISC-V) the
# edge's length word can be seen before the body it closes, so the writer trails: it reads a
# live segment only up to where records reached at its previous pass, a pass (0.2 s) ago, long
# after every store of theirs is visible. A finished or abandoned segment (its lock taken) is
# read whole: the lock is a system call on both sides, which orders memory.
STRONGLY_ORDERED = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}


class SpoolWriter:
    """Drains the spool directory `directory` into `store`; `drain()` does one pass."""

    def __init__(
        self,
        store: Store,
        directory: Path,
        mode: ClientIpMode,
        batch: int = BATCH,
        *,
        trail: bool = not STRONGLY_ORDERED,
    ) -> None:
        self.store = store
        self.directory = directory
        self.mode = mode
        self.batch = batch
        self.trail = trail
        self.inserted = 0
        self.unfinished = 0  # segments still being appended to after the last pass
        self._segments: dict[str, _Segment] = {}
        self._links: dict[bytes, _Link] = {}

    # One pass --------------------------------------------------------------------------

    def drain(self) -> int:
        """Insert what every segment holds now; return how many events."""
        before = self.inserted
        groups: dict[str, list[Path]] = {}
        try:
            paths = sorted(self.directory.glob(f"*{SUFFIX}"))
        except OSError:
            return 0
        for path in paths:
            groups.setdefault(path.stem.rsplit("-", 1)[0], []).append(path)
        unfinished = 0
        for segments in groups.values():
            for path in segments:
                if not self._drain_segment(path):
                    unfinished += 1
                    break  # keep one edge's events in order: the next waits for this one
        self.unfinished = unfinished
        return self.inserted - before

    def _drain_segment(self, path: Path) -> bool:
        """Insert what `path` holds; True when it was finished (and is now deleted)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                abandoned = True  # no edge appends to it any more
            except BlockingIOError:
                abandoned = False
            size = os.fstat(fd).st_size
            if size < HEADER_BYTES + LENGTH.size:
                return self._set_aside(path, "too short") if abandoned else False
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
                if mapped[:HEADER_BYTES] != MAGIC:
                    return self._set_aside(path, "not a spool segment")
                name = path.name
                segment = self._segment(name, mapped, size)
                readable = size
                if self.trail and not abandoned:
                    readable = max(segment.position, min(size, segment.seen))
                    segment.seen = _reach(mapped, readable, size)
                while True:
                    parsed = self._parse(mapped, segment.position, readable, segment.values)
                    if parsed.rows:
                        self._insert(name, segment, parsed)
                    else:
                        segment.position = parsed.position  # definitions only
                    if len(parsed.rows) >= self.batch:
                        continue  # more may follow at once
                    if not (parsed.finished or abandoned):
                        return False
                    break
            self._forget(path)
            return True
        finally:
            os.close(fd)

    def _set_aside(self, path: Path, why: str) -> bool:
        log.error("spool file %s is %s; moved aside as %s.bad", path, why, path.name)
        with contextlib.suppress(OSError):
            path.rename(path.with_name(path.name + ".bad"))
        return True

    def _segment(self, name: str, mapped: mmap.mmap, size: int) -> _Segment:
        known = self._segments.get(name)
        if known is not None:
            return known
        with self.store.session() as session:
            stored = session.scalar(
                select(EventSpoolSegment.position).where(EventSpoolSegment.name == name)
            )
        segment = _Segment(HEADER_BYTES, [None], None if stored is None else int(stored))
        if stored is not None:
            # Inserted up to `stored` by an earlier run: read the values defined before it.
            while segment.position < int(stored):
                parsed = self._parse(
                    mapped, segment.position, int(stored), segment.values, rows=False
                )
                if parsed.position == segment.position:
                    break
                segment.position = parsed.position
            segment.position = int(stored)
        self._segments[name] = segment
        return segment

    def _forget(self, path: Path) -> None:
        """The segment is finished and inserted: delete its file, then its row (a row left by
        a stop between the two is never read again, while the reverse order could insert the
        file's events twice)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with self.store.session() as session:
            session.execute(delete(EventSpoolSegment).where(EventSpoolSegment.name == path.name))
        self._segments.pop(path.name, None)

    # Reading ---------------------------------------------------------------------------

    def _parse(
        self,
        mapped: mmap.mmap,
        position: int,
        size: int,
        values: list[Any],
        rows: bool = True,
    ) -> _Parsed:
        """The events from `position` on (at most a batch), adding the values defined on the
        way to `values`; with `rows` False, only the values (up to `size`)."""
        found: list[tuple[Any, ...]] = []
        append = found.append
        links = self._links
        mode = self.mode
        sqlite = self.store.dialect == "sqlite"
        limit = self.batch if rows else 1 << 62
        unpack_length = LENGTH.unpack_from
        unpack_click = CLICK.unpack_from
        click_size = CLICK.size
        finished = False
        while len(found) < limit and position + 4 <= size:
            (length,) = unpack_length(mapped, position)
            if length == 0:
                break
            if length == END:
                finished = True
                break
            start = position + 4
            end = start + length
            if end > size or length < 1:
                log.error("spool segment damaged at byte %d; the rest of it is skipped", position)
                finished = True
                break
            kind = mapped[start : start + 1]
            if kind == KIND_CLICK and length >= click_size:
                if rows:
                    _, at, flags, link_number, agent_number, machine_number = unpack_click(
                        mapped, start
                    )
                    link = values[link_number]
                    client = mapped[start + click_size : end].decode("ascii") or None
                    instant = datetime.fromtimestamp(at, UTC)
                    append(
                        (
                            link[0],
                            None,
                            "open" if flags & FLAG_OPEN else "click",
                            link[1],
                            link[2],
                            link[3],
                            instant.replace(tzinfo=None).isoformat(" ", "microseconds")
                            if sqlite
                            else instant,
                            link[4],
                            client_ip(client, mode),
                            values[agent_number],
                            values[machine_number],
                            link[5],
                            link[6],
                        )
                    )
            elif kind == KIND_LINK:
                part = mapped[start:end]
                link = links.get(part)
                values.append(link if link is not None else self._link(part))
            elif kind == KIND_TEXT:
                values.append(mapped[start + 1 : end].decode("utf-8", "replace"))
            else:
                log.error("spool segment damaged at byte %d; the rest of it is skipped", position)
                finished = True
                break
            position = end
        return _Parsed(found, position, finished)

    def _link(self, part: bytes) -> _Link:
        (
            _,
            flags,
            link_id,
            minted_at,
            version,
            epoch,
            domain_length,
            data_length,
            destination_length,
        ) = LINK.unpack_from(part)
        start = LINK.size
        domain = part[start : start + domain_length].decode()
        start += domain_length
        data = part[start : start + data_length]
        start += data_length
        destination = part[start : start + destination_length].decode()
        link: _Link = (
            domain,
            data,
            None if flags & LINK_NO_ID else link_id,
            destination,
            None if flags & LINK_NO_MINT else minted_at,
            version,
            epoch,
        )
        if len(self._links) >= 16384:
            self._links.clear()
        self._links[part] = link
        return link

    # Writing ---------------------------------------------------------------------------

    def _insert(self, name: str, segment: _Segment, parsed: _Parsed) -> None:
        """Insert `parsed.rows` and move the segment's position, in one transaction."""
        expected = HEADER_BYTES if segment.stored is None else segment.stored
        store = self.store
        rows = parsed.rows
        with store.session() as session:
            names = {row[0] for row in rows}
            owners: dict[str, int | None] = {
                domain: account_id
                for domain, account_id in session.execute(
                    select(Domain.name, Domain.account_id).where(Domain.name.in_(names))
                )
            }
            if segment.stored is None:
                session.execute(
                    insert_unless_present(
                        session,
                        EventSpoolSegment,
                        {"name": name, "position": HEADER_BYTES, "updated_at": utcnow()},
                        ["name"],
                    )
                )
            moved = session.execute(
                update(EventSpoolSegment)
                .where(EventSpoolSegment.name == name, EventSpoolSegment.position == expected)
                .values(position=parsed.position, updated_at=utcnow())
            )
            if getattr(moved, "rowcount", 0) != 1:
                # Another writer got there first: start again from what it stored.
                session.rollback()
                self._segments.pop(name, None)
                raise _Moved(name)
            full = [(row[0], owners.get(row[0]), *row[2:]) for row in rows]
            if store.dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EVENTS_LOCK})
                _copy(session, full)
            else:
                session.connection().exec_driver_sql(_INSERT_SQL[store.dialect], full)
        segment.position = segment.stored = parsed.position
        self.inserted += len(rows)


class _Moved(Exception):
    """The segment's stored position was not the one this writer read from."""


def _copy(session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
    """`COPY ... FROM STDIN` on the session's own connection (and so its transaction)."""
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


# The writer's loop -----------------------------------------------------------------------


def run_writer(
    writer: SpoolWriter,
    stop: threading.Event,
    interval: float = 0.2,
    parent: int | None = None,
    linger: float = 10.0,
) -> None:
    """Hold the directory's writer lock, then drain every `interval` seconds until `stop` is
    set (or `parent` is no longer this process's parent). Then go on draining while edges
    still append to segments (the other processes of an edge pool stop at the same time), for
    up to `linger` seconds; what is left then waits for the next writer."""
    writer.directory.mkdir(parents=True, exist_ok=True)
    lock = os.open(writer.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop.wait(0.5) or _orphaned(parent):
                    return
        failures = 0
        until: float | None = None
        while True:
            if until is None and (stop.is_set() or _orphaned(parent)):
                until = time.monotonic() + linger
            try:
                inserted = writer.drain()
                if failures:
                    log.info("the event writer works again after %d failed passes", failures)
                failures = 0
            except _Moved:
                continue
            except Exception as exc:
                failures += 1
                inserted = 0
                delay = min(30.0, 0.5 * 2 ** min(failures - 1, 6))
                log.warning(
                    "inserting spooled events failed (%s: %s); they stay spooled, next try in "
                    "%.1f s",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                if until is not None and time.monotonic() >= until:
                    return
                stop.wait(delay if until is None else min(delay, 1.0))
                continue
            if until is not None and (not writer.unfinished or time.monotonic() >= until):
                return
            if inserted < writer.batch:
                if until is None:
                    stop.wait(interval)
                else:
                    time.sleep(0.05)
    finally:
        os.close(lock)


def _orphaned(parent: int | None) -> bool:
    return parent is not None and os.getppid() != parent


class WriterChild:
    """Keeps the event writer running for this process's spool directory: as a child process
    (`python -m linkcert.events.writer`), started again if it exits; or, for a database only
    this process can open (SQLite in memory), in a thread of this process."""

    def __init__(self, store: Store, directory: Path, mode: ClientIpMode) -> None:
        self.store = store
        self.directory = directory
        self.mode = mode
        self.process: asyncio.subprocess.Process | None = None
        self._thread_stop = threading.Event()
        self._thread: asyncio.Future[None] | None = None
        self._stopping = False

    @property
    def in_process(self) -> bool:
        url = self.store.url
        return url.startswith("sqlite") and sqlite_path(url) is None

    async def keep(self, stop: asyncio.Event) -> None:
        """Run the writer until `stop`, leaving it running then: `aclose()` stops it once the
        edge has closed its spool, so that it inserts the last events."""
        if self.in_process:
            writer = SpoolWriter(self.store, self.directory, self.mode)
            self._thread = asyncio.ensure_future(
                asyncio.to_thread(run_writer, writer, self._thread_stop)
            )
            return
        delay = 1.0
        while not stop.is_set() and not self._stopping:
            started = time.monotonic()
            try:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "linkcert.events.writer",
                    "--spool",
                    str(self.directory),
                    "--client-ip",
                    self.mode,
                    "--parent",
                    str(os.getpid()),
                    env={**os.environ, DATABASE_ENV: self.store.url},
                    stdin=asyncio.subprocess.DEVNULL,
                    # Out of the terminal's process group: a Ctrl-C is for this process,
                    # which stops the writer itself once the edge has closed its spool (a
                    # writer interrupted while still starting would print a traceback).
                    start_new_session=True,
                )
            except OSError as exc:
                log.error("cannot start the event writer: %s", exc)
            else:
                exited = asyncio.ensure_future(self.process.wait())
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if stop.is_set() or self._stopping:
                    exited.cancel()
                    return
                code = exited.result()
                log.error(
                    "the event writer exited (status %s); its events stay spooled, starting it "
                    "again in %.0f s",
                    code,
                    delay,
                )
            if time.monotonic() - started > 60:
                delay = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)

    async def aclose(self, timeout: float = 30.0) -> None:
        """Let the writer insert what is spooled, then stop it."""
        self._stopping = True
        if self._thread is not None:
            self._thread_stop.set()
            await asyncio.gather(self._thread, return_exceptions=True)
            return
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            log.error(
                "the event writer did not stop in %.0f s; killed (its events stay "
                "spooled for the next start)",
                timeout,
            )
            process.kill()
            await process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m linkcert.events.writer",
        description="Insert the events of an edge spool directory into the store (the database "
        f"URL in {DATABASE_ENV}).",
    )
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--client-ip", choices=["full", "truncated", "none"], default="truncated")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--parent", type=int, help="exit when this process is gone")
    parser.add_argument("--batch", type=int, default=BATCH, help="events per transaction at most")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    url = os.environ.get(DATABASE_ENV)
    if not url:
        print(f"set {DATABASE_ENV} to the database URL", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    store = Store(url)
    try:
        run_writer(
            SpoolWriter(store, args.spool, args.client_ip, max(1, args.batch)),
            stop,
            args.interval,
            args.parent,
        )
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _reach(mapped: mmap.mmap, position: int, size: int) -> int:
    """Where the whole records written from `position` on end now (up to an END mark or a
    length not yet written): how far a trailing writer may read at its next pass."""
    while position + LENGTH.size <= size:
        (length,) = LENGTH.unpack_from(mapped, position)
        if length == 0 or length == END or position + LENGTH.size + length > size:
            break
        position += LENGTH.size + length
    return position
