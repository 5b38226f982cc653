"""The click recorder: batching, flushing on close, surviving a failing sink, bounded memory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from linkcert.testbed.waiting import wait_for_async
from linkcert.tracking import Click, ClickRecorder


def _click(link_id: int) -> Click:
    return Click("links.example.com", link_id, "click", datetime.now(UTC))


class FlakySink:
    """Fails its first `failures` calls, then keeps every batch it is given."""

    def __init__(self, failures: int = 0) -> None:
        self.failures_left = failures
        self.batches: list[Sequence[Click]] = []
        self.calls = 0

    async def __call__(self, batch: Sequence[Click]) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("store unavailable")
        self.batches.append(batch)

    @property
    def link_ids(self) -> list[int]:
        return [click.link_id or 0 for batch in self.batches for click in batch]


async def test_ten_thousand_clicks_all_reach_the_sink_by_close() -> None:
    sink = FlakySink()
    recorder = ClickRecorder(sink, max_batch=500, max_delay=60)
    for link_id in range(10_000):
        assert recorder.record(_click(link_id))
    await recorder.aclose()
    assert sorted(sink.link_ids) == list(range(10_000))
    assert all(len(batch) <= 500 for batch in sink.batches)
    assert recorder.stats.delivered == 10_000
    assert recorder.stats.pending == 0


async def test_full_batches_go_out_without_waiting_for_the_delay() -> None:
    sink = FlakySink()
    recorder = ClickRecorder(sink, max_batch=100, max_delay=60)
    for link_id in range(250):
        recorder.record(_click(link_id))
    for _ in range(100):
        await asyncio.sleep(0)
        if len(sink.link_ids) >= 200:
            break
    assert [len(batch) for batch in sink.batches] == [100, 100]
    await recorder.aclose()
    assert len(sink.link_ids) == 250


async def test_a_lone_click_goes_out_after_the_delay() -> None:
    sink = FlakySink()
    recorder = ClickRecorder(sink, max_batch=100, max_delay=0.05)
    recorder.record(_click(1))
    await wait_for_async(lambda: sink.link_ids == [1], "the lone click delivered")
    await recorder.aclose()


async def test_sync_sink_is_accepted() -> None:
    received: list[Click] = []
    recorder = ClickRecorder(received.extend, max_batch=10, max_delay=60)
    for link_id in range(25):
        recorder.record(_click(link_id))
    await recorder.aclose()
    assert [click.link_id for click in received] == list(range(25))


async def test_record_never_waits_for_a_slow_sink() -> None:
    release = asyncio.Event()
    delivered: list[Click] = []

    async def slow_sink(batch: Sequence[Click]) -> None:
        await release.wait()
        delivered.extend(batch)

    recorder = ClickRecorder(slow_sink, max_batch=10, max_delay=0)
    recorder.record(_click(0))
    await asyncio.sleep(0.01)  # the first batch is now stuck in the sink
    for link_id in range(1, 1000):
        assert recorder.record(_click(link_id))  # synchronous, and it returns
    assert recorder.stats.pending == 1000
    release.set()
    await recorder.aclose()
    assert sorted(click.link_id or 0 for click in delivered) == list(range(1000))


async def test_sink_failure_then_recovery_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    sink = FlakySink(failures=3)
    recorder = ClickRecorder(sink, max_batch=50, max_delay=0.01, retry_initial=0.01)
    with caplog.at_level(logging.INFO, logger="linkcert.tracking"):
        for link_id in range(120):
            recorder.record(_click(link_id))
        await asyncio.sleep(0.2)
        for link_id in range(120, 200):
            recorder.record(_click(link_id))
        await recorder.aclose()
    assert sorted(sink.link_ids) == list(range(200))  # each exactly once
    stats = recorder.stats
    assert (stats.delivered, stats.sink_failures, stats.dropped) == (200, 3, 0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3  # one line per failure
    assert all(
        "\n" not in r.getMessage() and "store unavailable" in r.getMessage() for r in warnings
    )
    assert any("recovered" in r.getMessage() for r in caplog.records)


async def test_past_the_bound_new_clicks_are_dropped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = FlakySink(failures=10**9)
    recorder = ClickRecorder(
        sink, max_batch=5, max_delay=0, max_pending=10, retry_initial=10, close_timeout=0.05
    )
    with caplog.at_level(logging.WARNING, logger="linkcert.tracking"):
        accepted = [recorder.record(_click(link_id)) for link_id in range(15)]
        await asyncio.sleep(0.01)
        assert accepted == [True] * 10 + [False] * 5
        assert recorder.stats.dropped == 5
        drop_logs = [r for r in caplog.records if "buffer full" in r.getMessage()]
        assert len(drop_logs) == 1  # not one per dropped click
        with caplog.at_level(logging.ERROR, logger="linkcert.tracking"):
            await recorder.aclose()
    # The sink never recovered: what was kept is lost at shutdown, counted and logged.
    assert recorder.stats.dropped == 15
    assert recorder.stats.pending == 0
    assert any("10 clicks lost" in r.getMessage() for r in caplog.records)


async def test_record_after_close_is_an_error() -> None:
    recorder = ClickRecorder(FlakySink())
    await recorder.aclose()
    await recorder.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        recorder.record(_click(1))


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        ClickRecorder(FlakySink(), max_batch=0)
    with pytest.raises(ValueError, match="max_pending"):
        ClickRecorder(FlakySink(), max_batch=10, max_pending=5)
