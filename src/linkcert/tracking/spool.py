"""The edge's spool: click and open events handed out of the edge process before the answer.

Each edge process appends its events to segment files of its own under a spool directory
(`<data_dir>/event-spool/`); the event writer (linkcert.events.writer) reads them, inserts
them into the store in large batches, and deletes each segment once it is finished and
inserted. A segment is a file of fixed size mapped into the edge's memory: appending an event
is a copy into that memory, no system call, and it happens before the edge answers the click.
The pages belong to the file, in the kernel's page cache, so an edge that dies in any way
(`kill -9`, the OOM killer, a crash) leaves every event it appended for the writer. What is
not protected is a power cut or kernel crash before the kernel writes the pages out (the edge
never calls fsync): the events of those last seconds that the writer had not yet inserted.

Layout of a segment (integers little-endian):

    header   16 bytes: MAGIC
    record   u32 length L of the body (0: not written yet; END: the segment is finished),
             then L bytes of body, whose first byte says what it is
    click    b"c", f64 time (Unix seconds), u8 flags (1: open), u32 link, u32 user agent,
             u32 machine reason (each the number of a value defined earlier in the segment,
             0: none), then the client address (ASCII, the rest of the body)
    link     b"l" (defines the next value): u8 flags (1: no link id, 2: no mint time), i64 link
             id, i64 mint time, u16 token version, u32 epoch, u16 domain length, u32 data length,
             u32 destination length, then the domain, the data and the destination
    text     b"t" (defines the next value): UTF-8 text (a user agent, a machine reason)

Values are numbered from 1 in the order of their definitions, anew in each segment: a link
clicked many times, a common user agent, is written once per segment, and each click is a
record of some 40 bytes.

The length is written after the body: on x86-64, whose stores other processes see in order, a
reader that finds a nonzero length finds the whole body behind it. On CPUs with weaker memory
ordering the writer trails by a pass: it reads a live segment only as far as whole records
reached when it last looked (linkcert.events.writer.STRONGLY_ORDERED). A segment is made
under a temporary name, locked (flock) by its edge for as long as the edge appends to it, and
only then renamed to `*.spool`: a segment the writer can lock is one no edge will append to
again.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import threading
import uuid
from pathlib import Path

from linkcert.tracking.machines import MAX_USER_AGENT_BYTES
from linkcert.tracking.tokens import TrackedLink

MAGIC = b"linkcert-spool1\n"
HEADER_BYTES = len(MAGIC)
SUFFIX = ".spool"
END = 0xFFFF_FFFF
SEGMENT_BYTES = 32 * 1024 * 1024

LENGTH = struct.Struct("<I")
_pack_length = LENGTH.pack_into
CLICK = struct.Struct("<cdBIII")
LINK = struct.Struct("<cBqqHIHII")
_pack_click = CLICK.pack_into
_CLICK_SIZE = CLICK.size
KIND_CLICK = b"c"
KIND_LINK = b"l"
KIND_TEXT = b"t"
# Values remembered per segment on each side: past this, a segment starts numbering anew
# (the edge moves to a new segment).
MAX_VALUES = 100_000

FLAG_OPEN = 1
LINK_NO_ID = 1
LINK_NO_MINT = 2

# Room an event needs besides its link's definition: a click, a user agent's and a machine
# reason's definitions, each with its length.
_ROOM = 2048
_BIG_LINK = 64 * 1024
# Any one record is far below this: a domain (253), data and a destination bounded by the
# token's own size limit, a user agent cut to MAX_USER_AGENT_BYTES.
MAX_RECORD_BYTES = 1024 * 1024


def link_part(domain: str, link: TrackedLink) -> bytes:
    """The part of a record that depends only on the link: made once per verified token."""
    name = domain.encode("utf-8")
    destination = link.destination.encode("utf-8")
    flags = (LINK_NO_ID if link.link_id is None else 0) | (
        LINK_NO_MINT if link.minted_at is None else 0
    )
    return (
        LINK.pack(
            KIND_LINK,
            flags,
            link.link_id or 0,
            link.minted_at or 0,
            link.version,
            link.epoch,
            len(name),
            len(link.data),
            len(destination),
        )
        + name
        + link.data
        + destination
    )


class SpoolFull(Exception):
    """A record could not be appended (no room in the spool's file system, or too large)."""


class EventSpool:
    """This process's segments: `append` writes one event into the current one.

    The next segment is prepared in a thread once the current one is half full (its file written
    with zeros, so that its blocks exist and a full file system shows as an error there, and
    then mapped with every page present): a page first touched in a mapping costs a fault of a
    few microseconds, a prepared one nothing. Not thread-safe: `append` from one thread."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        if segment_bytes < 64 * 1024:
            raise ValueError("spool segments need at least 64 KiB")
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex}"
        self._sequence = 0
        self._map: mmap.mmap | None = None
        self._fd = -1
        self._position = 0
        self._limit = 0
        self._soft_limit = -1
        # This segment's values and their numbers: links and machine reasons, user agents.
        self._values: dict[bytes | str, int] = {}
        self._agents: dict[bytes, int] = {}
        self._defined = 0
        self._next: _Prepared | None = None
        self.path: Path | None = None

    def open(self) -> None:
        """Create the directory and the first segment (so that a problem shows at start)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._switch(self._prepare_now())

    def _prepare_now(self) -> _Prepared:
        self._sequence += 1
        prepared = _Prepared(
            self.directory, f"{self._prefix}-{self._sequence:08d}", self.segment_bytes
        )
        prepared.run()
        return prepared

    def _prepare_next(self) -> None:
        self._sequence += 1
        prepared = _Prepared(
            self.directory, f"{self._prefix}-{self._sequence:08d}", self.segment_bytes
        )
        prepared.start()
        self._next = prepared

    def _switch(self, prepared: _Prepared) -> None:
        mapped, fd, path = prepared.result()
        self._close_segment()
        self._map, self._fd, self.path = mapped, fd, path
        self._position = HEADER_BYTES
        # Room for the END mark after the last record.
        self._limit = self.segment_bytes - LENGTH.size
        self._values = {}
        self._agents = {}
        self._defined = 0
        self._soft_limit = -1
        self._make_room(0)

    def _close_segment(self) -> None:
        mapped, fd = self._map, self._fd
        if mapped is not None:
            LENGTH.pack_into(mapped, self._position, END)
            mapped.close()
            self._map = None
        if fd >= 0:
            os.close(fd)  # drops the lock: the writer may finish the segment
            self._fd = -1

    def append(
        self,
        link: bytes,
        at: float,
        is_open: bool,
        client: str | None,
        user_agent: bytes | None,
        machine: str | None,
    ) -> None:
        """Append one event; raises SpoolFull when it cannot. `link` is `link_part()`'s (the
        same object for the same link: it is looked up by value, hashed once)."""
        if self._position > self._soft_limit:
            self._make_room(len(link) + _ROOM)
        values = self._values
        try:
            link_number = values[link]
        except KeyError:
            link_number = self._define(link, link)
        if user_agent:
            agents = self._agents
            try:
                agent_number = agents[user_agent]
            except KeyError:
                agent_number = agents[user_agent] = self._define(
                    None, KIND_TEXT + user_agent[:MAX_USER_AGENT_BYTES]
                )
        else:
            agent_number = 0
        if machine is None:
            machine_number = 0
        else:
            try:
                machine_number = values[machine]
            except KeyError:
                machine_number = self._define(machine, KIND_TEXT + machine.encode())
        # The record written in place: the body, then its length.
        start = self._position + 4
        end = start + _CLICK_SIZE
        mapped = self._map
        if mapped is None:
            raise SpoolFull("the spool is closed")
        _pack_click(
            mapped, start, KIND_CLICK, at, is_open, link_number, agent_number, machine_number
        )
        if client:
            address = client.encode("ascii", "replace")
            mapped[end : end + len(address)] = address
            end += len(address)
        _pack_length(mapped, start - 4, end - start)
        self._position = end

    def _make_room(self, size: int) -> None:
        """Roll to the next segment if `size` more bytes (or more values) would not fit; start
        preparing the next one when this one is half full; and say up to where `append` need
        not call this again (`_soft_limit`)."""
        if self._position + size > self._limit or self._defined >= MAX_VALUES:
            self._roll(size)
        half = self._limit // 2
        if self._next is None and self._position > half:
            self._prepare_next()
        # Below the soft limit there is room for any event whose link has up to _BIG_LINK
        # bytes, and for the next one to be prepared in time.
        self._soft_limit = self._limit - _BIG_LINK - _ROOM
        if self._next is None:
            self._soft_limit = min(self._soft_limit, half)
        if self._defined >= MAX_VALUES - 3:
            self._soft_limit = -1

    def _define(self, key: bytes | str | None, body: bytes) -> int:
        """Write `body` as the segment's next value; its number."""
        if self._defined >= MAX_VALUES - 3:
            self._soft_limit = -1  # every append checks, and the next one rolls
        self._write(body)
        number = self._defined = self._defined + 1
        if key is not None:
            self._values[key] = number
        return number

    def _write(self, body: bytes) -> None:
        size = len(body)
        start = self._position + 4
        end = start + size
        mapped = self._map
        if mapped is None:
            raise SpoolFull("the spool is closed")
        mapped[start:end] = body
        _pack_length(mapped, start - 4, size)
        self._position = end

    def _roll(self, size: int) -> None:
        """Finish the current segment and go on in the next (`size`: the room needed)."""
        if size + HEADER_BYTES + LENGTH.size > self.segment_bytes or size > MAX_RECORD_BYTES:
            raise SpoolFull(f"an event of {size} bytes does not fit a spool segment")
        prepared = self._next
        self._next = None
        try:
            self._switch(prepared if prepared is not None else self._prepare_now())
        except OSError as exc:
            raise SpoolFull(f"cannot start a new spool segment in {self.directory}: {exc}") from exc

    def close(self) -> None:
        """Mark the segments finished and let them go (the writer deletes them)."""
        self._close_segment()
        prepared, self._next = self._next, None
        if prepared is not None:
            with contextlib.suppress(OSError):
                mapped, fd, _ = prepared.result()
                LENGTH.pack_into(mapped, HEADER_BYTES, END)
                mapped.close()
                os.close(fd)


class _Prepared:
    """One segment made ready: its file of zeros, locked, mapped, renamed to `*.spool`."""

    def __init__(self, directory: Path, name: str, size: int) -> None:
        self.directory = directory
        self.name = name
        self.size = size
        self._done: tuple[mmap.mmap, int, Path] | None = None
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="linkcert-spool", daemon=True)
        self._thread.start()

    def run(self) -> None:
        try:
            self._done = self._make()
        except OSError as exc:
            self._error = exc

    def result(self) -> tuple[mmap.mmap, int, Path]:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._done is not None
        return self._done

    def _make(self) -> tuple[mmap.mmap, int, Path]:
        temporary = self.directory / f"{self.name}.tmp"
        final = self.directory / f"{self.name}{SUFFIX}"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            zeros = bytes(_ZERO_CHUNK)
            for offset in range(0, self.size, _ZERO_CHUNK):
                os.pwrite(fd, zeros[: min(_ZERO_CHUNK, self.size - offset)], offset)
            mapped = mmap.mmap(fd, self.size, flags=mmap.MAP_SHARED | _MAP_POPULATE)
            # Mapped writable now, not at each page's first write (Linux 5.14 and later).
            with contextlib.suppress(OSError):
                mapped.madvise(_MADV_POPULATE_WRITE)
            mapped[:HEADER_BYTES] = MAGIC
            os.rename(temporary, final)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return mapped, fd, final


_ZERO_CHUNK = 1024 * 1024
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)
