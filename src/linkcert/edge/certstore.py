"""Every certificate the edge serves, packed for 100,000 domains and several edge processes.

One bytearray holds each domain's leaf certificate and private key as DER, end to end; arrays
of plain numbers say, per domain, where its bytes start, how long they are, its version and
which shared intermediate chain goes with it. A name maps to a row number.

Why not an object per certificate: beyond the ~100 bytes of object headers each would cost,
edge processes forked from the one that loaded the certificates share its memory copy-on-write,
and CPython writes to an object whenever it hands it out (its reference count). Objects per
certificate would be copied, page by page, into every process that serves those names; bytes
inside one bytearray, and numbers inside arrays, are only ever read.

A row may also hold only a name's version and link epoch, without its bytes ("indexed"): with
more certificates than are worth holding (a million domains), the edge knows every served name
from start and loads a certificate's bytes at its first handshake (certs.py).

Not thread-safe: use it from one thread, like the cache around it.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

# Replaced or removed certificates leave holes; rewrite the bytearray once the holes make up
# more than half of it and at least this much.
_COMPACT_AFTER_BYTES = 1 << 20


class StoredCertificate(NamedTuple):
    version: int
    leaf: bytes
    intermediates: tuple[bytes, ...]
    key_label: str
    key_der: bytes


class CertificateStore:
    """Name (already normalized) → version, leaf DER, shared intermediates, key DER.

    Versions are kept as signed 64-bit numbers (the store's row versions fit).
    """

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._names: list[str | None] = []  # by row: the name a row holds (None: free)
        self._free_rows: list[int] = []
        self._blob = bytearray()
        self._start = array("Q")  # where the row's leaf begins; its key follows the leaf
        self._leaf_length = array("I")
        self._key_length = array("I")
        self._version = array("q")
        self._epoch = array("q")  # the name's link epoch: tracked links are signed in it
        self._chain = array("I")  # index into _chains
        self._label = array("B")  # index into _labels
        # A CA has a handful of intermediate chains shared by all its certificates: one copy
        # each, counted, and forgotten when no certificate uses it any more.
        self._chains: list[tuple[bytes, ...] | None] = []
        self._chain_index: dict[tuple[bytes, ...], int] = {}
        self._chain_users: list[int] = []
        self._labels: list[str] = []
        self._holes = 0
        self._loaded = 0  # rows holding their bytes (the others are only indexed)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: str) -> bool:
        return name in self._rows

    @property
    def loaded_count(self) -> int:
        """Rows holding their certificate's bytes, as opposed to rows only indexed."""
        return self._loaded

    def is_loaded(self, name: str) -> bool:
        row = self._rows.get(name)
        return row is not None and self._leaf_length[row] > 0

    def names(self) -> list[str]:
        return list(self._rows)

    def pack(self) -> None:
        """Lay every name (and row number) out afresh, next to each other in memory.

        For a process about to fork workers: names read from the database sit scattered among
        the pages the load's temporary objects used, and a worker that walks the names (the
        periodic full comparison) writes to each one's reference count, copying every page
        that holds one. Packed, those copies come to the names' own size, not several times
        it.
        """
        rows: dict[str, int] = {}
        names: list[str | None] = [None] * len(self._names)
        for name, row in self._rows.items():
            # New objects, allocated one after another (str.join and int.from_bytes make
            # copies, whereas str(s) and int(i) return the very same object).
            copy = "".join(name)
            rows[copy] = int.from_bytes(row.to_bytes(8, "little"), "little")
            names[row] = copy
        self._rows = rows
        self._names = names

    def versions(self) -> dict[str, tuple[int, int]]:
        """Every name with its (version, link epoch)."""
        version, epoch = self._version, self._epoch
        return {name: (version[row], epoch[row]) for name, row in self._rows.items()}

    def max_version(self) -> int:
        """The highest version of any name held (0 for none)."""
        # Free rows hold version 0; reading the array touches no object of the names.
        return max(self._version, default=0)

    def compare(self, name: str, version: int, epoch: int, seen: bytearray) -> int:
        """Whether `name` is held: 0 not, 1 at `version` and `epoch`, 2 otherwise. Marks its
        row in `seen` (one byte per row, `row_count` long at least).

        For comparing every name with the store without walking the names: a lookup writes
        to no object of the name held, where iterating over them would (their reference
        counts), copying their pages into a process forked after they were loaded.
        """
        row = self._rows.get(name)
        if row is None:
            return 0
        seen[row] = 1
        same = self._version[row] == version and self._epoch[row] == epoch
        return 1 if same else 2

    @property
    def row_count(self) -> int:
        return len(self._start)

    def names_not_seen(self, seen: bytearray) -> list[str]:
        """The names held whose rows `seen` does not mark."""
        found: list[str] = []
        names = self._names
        row = seen.find(0)
        while row >= 0:
            if row >= len(names):
                break
            name = names[row]
            if name is not None:
                found.append(name)
            row = seen.find(0, row + 1)
        # Rows added after `seen` was made are not in it: they are new, not unseen.
        return found

    @property
    def packed_bytes(self) -> int:
        """Bytes of DER held, holes included: what the certificates cost beyond bookkeeping."""
        return len(self._blob)

    def version(self, name: str) -> int | None:
        row = self._rows.get(name)
        return None if row is None else self._version[row]

    def epoch(self, name: str) -> int | None:
        row = self._rows.get(name)
        return None if row is None else self._epoch[row]

    def set_epoch(self, name: str, epoch: int) -> None:
        self._epoch[self._rows[name]] = epoch

    def get(self, name: str) -> StoredCertificate | None:
        """The row's certificate; None if `name` has no row or only an indexed one."""
        row = self._rows.get(name)
        if row is None or not self._leaf_length[row]:
            return None
        start = self._start[row]
        key_start = start + self._leaf_length[row]
        chain = self._chains[self._chain[row]]
        assert chain is not None  # a row in use keeps its chain alive
        return StoredCertificate(
            self._version[row],
            bytes(self._blob[start:key_start]),
            chain,
            self._labels[self._label[row]],
            bytes(self._blob[key_start : key_start + self._key_length[row]]),
        )

    def put(
        self,
        name: str,
        version: int,
        leaf: bytes,
        intermediates: tuple[bytes, ...],
        key_label: str,
        key_der: bytes,
    ) -> bool:
        """Store or replace `name`'s certificate; returns whether its content changed (a new
        version of the same content only updates the version)."""
        if not leaf:
            raise ValueError("a stored certificate cannot be empty")
        row = self._rows.get(name)
        if row is not None and self._same_content(row, leaf, intermediates, key_der):
            self._version[row] = version
            return False
        chain = self._hold_chain(intermediates)
        label = self._label_index(key_label)
        start = len(self._blob)
        self._blob += leaf
        self._blob += key_der
        if row is None:
            row = self._new_row()
            self._rows[name] = row
            self._names[row] = name
        else:
            self._release(row)
        self._start[row] = start
        self._leaf_length[row] = len(leaf)
        self._key_length[row] = len(key_der)
        self._version[row] = version
        self._chain[row] = chain
        self._label[row] = label
        self._loaded += 1
        self._compact_if_worth_it()
        return True

    def put_index(self, name: str, version: int) -> bool:
        """Know `name` at `version` without its bytes. A row already at that version keeps
        what it holds; otherwise its bytes are dropped (loaded again when next wanted).
        Returns whether the row's content was dropped or is new."""
        row = self._rows.get(name)
        if row is not None:
            if self._version[row] == version:
                return False
            self._release(row)
        else:
            row = self._new_row()
            self._rows[name] = row
            self._names[row] = name
        self._start[row] = 0
        self._leaf_length[row] = 0
        self._key_length[row] = 0
        self._version[row] = version
        self._compact_if_worth_it()
        return True

    def unload(self, name: str) -> bool:
        """Drop `name`'s bytes, keeping its version and epoch; returns whether it held any."""
        row = self._rows.get(name)
        if row is None or not self._leaf_length[row]:
            return False
        self._release(row)
        self._start[row] = self._leaf_length[row] = self._key_length[row] = 0
        self._compact_if_worth_it()
        return True

    def remove(self, name: str) -> bool:
        row = self._rows.pop(name, None)
        if row is None:
            return False
        self._release(row)
        self._leaf_length[row] = self._key_length[row] = 0
        self._version[row] = 0
        self._names[row] = None
        self._free_rows.append(row)
        self._compact_if_worth_it()
        return True

    # Rows, chains and holes --------------------------------------------------------------------

    def _same_content(
        self, row: int, leaf: bytes, intermediates: tuple[bytes, ...], key_der: bytes
    ) -> bool:
        if not self._leaf_length[row]:
            return False
        start = self._start[row]
        key_start = start + self._leaf_length[row]
        return (
            self._chains[self._chain[row]] == intermediates
            and self._leaf_length[row] == len(leaf)
            and self._key_length[row] == len(key_der)
            and self._blob[start:key_start] == leaf
            and self._blob[key_start : key_start + len(key_der)] == key_der
        )

    def _new_row(self) -> int:
        if self._free_rows:
            return self._free_rows.pop()
        for column in (
            self._start,
            self._leaf_length,
            self._key_length,
            self._version,
            self._epoch,
            self._chain,
            self._label,
        ):
            column.append(0)
        self._names.append(None)
        return len(self._start) - 1

    def _release(self, row: int) -> None:
        """Forget what `row` held: its bytes become a hole, its chain loses a user."""
        if not self._leaf_length[row]:
            return  # only indexed: nothing held
        self._loaded -= 1
        self._holes += self._leaf_length[row] + self._key_length[row]
        chain = self._chain[row]
        self._chain_users[chain] -= 1
        if not self._chain_users[chain]:
            held = self._chains[chain]
            assert held is not None
            del self._chain_index[held]
            self._chains[chain] = None

    def _hold_chain(self, intermediates: tuple[bytes, ...]) -> int:
        index = self._chain_index.get(intermediates)
        if index is None:
            try:
                index = self._chains.index(None)  # reuse a forgotten chain's place
                self._chains[index] = intermediates
                self._chain_users[index] = 0
            except ValueError:
                index = len(self._chains)
                self._chains.append(intermediates)
                self._chain_users.append(0)
            self._chain_index[intermediates] = index
        self._chain_users[index] += 1
        return index

    def _label_index(self, label: str) -> int:
        try:
            return self._labels.index(label)
        except ValueError:
            self._labels.append(label)
            return len(self._labels) - 1

    def _compact_if_worth_it(self) -> None:
        if self._holes < _COMPACT_AFTER_BYTES or self._holes * 2 < len(self._blob):
            return
        packed = bytearray()
        for row in self._rows.values():
            start = self._start[row]
            length = self._leaf_length[row] + self._key_length[row]
            if not length:
                continue
            self._start[row] = len(packed)
            packed += self._blob[start : start + length]
        self._blob = packed
        self._holes = 0
