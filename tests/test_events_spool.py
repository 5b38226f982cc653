"""The edge's event spool and the event writer: every spooled event inserted once, in order, in
batches, on SQLite and PostgreSQL, whatever process is killed when."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from linkcert.events.store import event_json
from linkcert.events.writer import DATABASE_ENV, SpoolWriter
from linkcert.store import EventSpoolSegment, LinkEvent, Store
from linkcert.tracking.spool import EventSpool
from tests.api_support import make_world
from tests.events_support import fill_spool, spool_link


def _events(store: Store) -> list[LinkEvent]:
    with store.session() as session:
        rows = list(session.scalars(select(LinkEvent).order_by(LinkEvent.id)))
        session.expunge_all()
        return rows


def _count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(LinkEvent)) or 0)


def _times(store: Store) -> list[float]:
    return [row.at.timestamp() for row in _events(store)]


def test_spooled_events_are_inserted_in_order_in_batches_with_their_values(
    store: Store, tmp_path: Path
) -> None:
    account_id = make_world(store).a_id
    spool = EventSpool(tmp_path / "spool", segment_bytes=64 * 1024)
    spool.open()
    writer = SpoolWriter(store, tmp_path / "spool", "truncated", batch=700)
    fill_spool(spool, 0, 3000)  # over several segments
    assert writer.drain() == 3000
    fill_spool(spool, 3000, 10)
    # A writer started afresh (its predecessor's memory lost) goes on where the store says.
    writer = SpoolWriter(store, tmp_path / "spool", "truncated", batch=700)
    assert writer.drain() == 10
    spool.close()
    assert writer.drain() == 0
    assert not list((tmp_path / "spool").iterdir())  # every segment finished and deleted
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(EventSpoolSegment)) == 0

    rows = _events(store)
    assert [bytes(row.data) for row in rows] == [f"n={n % 50}".encode() for n in range(3010)]
    times = [row.at.timestamp() for row in rows]
    assert times == sorted(times)  # ids follow the order the edge spooled them in
    first, second = event_json(rows[0]), event_json(rows[1])
    assert first["kind"] == "open" and second["kind"] == "click"
    assert first["account_id"] == account_id
    assert first["link_id"] == 0 and first["destination"] == "https://shop.example/0"
    assert first["machine"] == "head" and second["machine"] is None
    assert first["client_ip"] == "192.0.2.0/24"
    assert first["user_agent"] is None
    assert second["user_agent"] == "Mozilla/5.0 (spool test)"
    assert first["at"] == "2027-01-15T08:00:00Z"
    assert first["seconds_since_mint"] == 1_800_000_000 - 1_700_000_000


def test_a_trailing_writer_reads_a_live_segment_one_pass_behind(
    store: Store, tmp_path: Path
) -> None:
    """Where other processes may see the edge's stores out of order, the writer reads a live
    segment only up to where whole records reached at its previous pass; all of it once the
    edge has let the segment go. Nothing is lost or repeated either way."""
    make_world(store)
    spool = EventSpool(tmp_path / "spool", segment_bytes=64 * 1024)
    spool.open()
    writer = SpoolWriter(store, tmp_path / "spool", "truncated", trail=True)
    fill_spool(spool, 0, 100)
    assert writer.drain() == 0  # first sight: only where the records reach is noted
    fill_spool(spool, 100, 20)
    assert writer.drain() == 100  # what was whole a pass ago
    assert writer.drain() == 20
    fill_spool(spool, 120, 5)
    spool.close()
    assert writer.drain() == 5  # let go: read whole at once
    assert not list((tmp_path / "spool").iterdir())
    assert [bytes(row.data) for row in _events(store)] == [
        f"n={n % 50}".encode() for n in range(125)
    ]


def test_a_long_user_agent_is_cut_and_odd_bytes_kept_readable(store: Store, tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool")
    spool.open()
    spool.append(spool_link(1), 1_800_000_000.0, False, None, b"\xff" + b"a" * 2000, None)
    spool.close()
    assert SpoolWriter(store, tmp_path / "spool", "full").drain() == 1
    (event,) = [event_json(row) for row in _events(store)]
    assert event["client_ip"] is None
    assert event["user_agent"].startswith("\ufffd") and len(event["user_agent"]) == 512


def test_a_file_that_is_not_a_segment_is_set_aside(store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / "1-x-00000001.spool").write_bytes(b"something else entirely" * 10)
    assert SpoolWriter(store, directory, "full").drain() == 0
    assert [path.name for path in directory.iterdir()] == ["1-x-00000001.spool.bad"]


def _writer(database: str, directory: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "linkcert.events.writer",
                "--spool",
                str(directory),
                "--batch",
                "500",
                "--interval",
                "0.05",
            ],
            env={**os.environ, DATABASE_ENV: database},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_a_writer_killed_mid_stream_leaves_no_event_out_and_none_twice(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    spool = EventSpool(directory, segment_bytes=256 * 1024)
    spool.open()
    total = 40_000
    fill_spool(spool, 0, total)
    spool.close()
    log = tmp_path / "writer.log"
    first = _writer(db_url, directory, log)
    try:
        for _ in range(6000):
            if _count(store) > 0:
                break
            assert first.poll() is None, log.read_text()[-3000:]
            time.sleep(0.005)
        first.kill()  # kill -9, between two batches or in the middle of one
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    partial = _count(store)
    assert 0 < partial < total, "the writer was not stopped in the middle"
    second = _writer(db_url, directory, log)
    try:
        for _ in range(6000):
            if not list(directory.glob("*.spool")):
                break
            assert second.poll() is None, log.read_text()[-3000:]
            time.sleep(0.01)
        else:
            raise AssertionError("the second writer did not finish the spool")
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert second.returncode == 0, log.read_text()[-3000:]
    times = _times(store)
    assert len(times) == total  # each once
    assert times == sorted(times)
    assert len(set(times)) == total


def test_an_edge_process_killed_mid_stream_leaves_what_it_spooled(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    """A process appending to its spool, killed with `kill -9` without finishing its segment:
    the writer finds the segment unlocked, inserts what it holds and deletes it."""
    directory = tmp_path / "spool"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from linkcert.tracking.spool import EventSpool\n"
        "from tests.events_support import fill_spool\n"
        "spool = EventSpool(Path(sys.argv[1]), segment_bytes=128 * 1024)\n"
        "spool.open()\n"
        "fill_spool(spool, 0, 9000)\n"
        "print('spooled', flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(directory)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"spooled\n"
        writer = SpoolWriter(store, directory, "full", batch=1000)
        assert writer.drain() == 9000  # read while the process lives
        assert list(directory.glob("*.spool"))  # its current segment is still its own
    finally:
        child.kill()
        child.wait(timeout=10)
    assert writer.drain() == 0
    assert not list(directory.glob("*.spool"))  # finished once its process was gone
    times = _times(store)
    assert len(times) == 9000 and times == sorted(times)
