"""Publishing events to RabbitMQ, with publisher confirms.

One process at a time holds the `broker` cursor's lease and publishes the events after it, in
id order, to a durable topic exchange (routing key `<kind>.<account id>`, `none` for a
domain without an account), as persistent messages whose `message_id` is the event id. The
cursor moves past an event only once the broker has confirmed every message up to it; a
message the broker could not route (no queue bound) counts as not delivered. Whatever happens
in between (broker down, connection cut, this process killed) the events are published again
from the cursor: at least once, and consumers drop repeats by `message_id`.

See docs/events.md for why RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from datetime import timedelta

import aiormq
from pamqp.commands import Basic

from linkcert.config import Settings
from linkcert.events.store import (
    advance_cursor,
    claim_cursor,
    event_json,
    read_after,
    release_cursor,
)
from linkcert.store import Store

log = logging.getLogger("linkcert.events.broker")

CURSOR = "broker"
BATCH = 500
LEASE = timedelta(seconds=30)


class BrokerPublisher:
    """Publishes events from the store to the broker until stopped."""

    def __init__(
        self,
        store: Store,
        url: str,
        *,
        exchange: str = "linkcert.events",
        queue: str = "linkcert.events",
        poll_interval: float = 0.5,
        retry_max: float = 10.0,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.url = url
        self.exchange = exchange
        self.queue = queue
        self.poll_interval = poll_interval
        self.retry_max = retry_max
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:broker"
        self.published = 0
        self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.5
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                    delay = 0.5
                except Exception as exc:
                    self.failures += 1
                    log.warning(
                        "event broker unavailable (%s: %s); events wait in the database, "
                        "retrying in %.1f s",
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    delay = min(self.retry_max, delay * 2)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(release_cursor, self.store, CURSOR, self.owner)

    async def _session(self, stop: asyncio.Event) -> None:
        connection = await asyncio.wait_for(aiormq.connect(self.url), 10)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            if self.queue:
                await channel.queue_declare(self.queue, durable=True)
                await channel.queue_bind(self.queue, self.exchange, routing_key="#")
            log.info("publishing events to %s", self.exchange)
            while not stop.is_set():
                sent = await self._publish_some(channel)
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_interval)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _publish_some(self, channel: aiormq.abc.AbstractChannel) -> int:
        after = await asyncio.to_thread(claim_cursor, self.store, CURSOR, self.owner, LEASE)
        if after is None:
            return 0  # another process publishes
        rows = await asyncio.to_thread(read_after, self.store, after, BATCH)
        if not rows:
            return 0
        confirmations = [
            channel.basic_publish(
                json.dumps(event_json(row), separators=(",", ":")).encode(),
                exchange=self.exchange,
                routing_key=_routing_key(row.kind, row.account_id),
                mandatory=True,
                properties=Basic.Properties(
                    content_type="application/json",
                    delivery_mode=2,
                    message_id=str(row.id),
                    message_type=f"linkcert.{row.kind}",
                ),
                timeout=30,
            )
            for row in rows
        ]
        results = await asyncio.gather(*confirmations)
        for result in results:
            if not isinstance(result, Basic.Ack):
                raise RuntimeError(f"the broker did not take an event ({type(result).__name__})")
        last = rows[-1].id

        def advance() -> bool:
            with self.store.session() as session:
                return advance_cursor(session, CURSOR, self.owner, last)

        if await asyncio.to_thread(advance):
            self.published += len(rows)
        return len(rows)


def _routing_key(kind: str, account_id: int | None) -> str:
    return f"{kind}.{account_id if account_id is not None else 'none'}"


async def run_broker(store: Store, settings: Settings, stop: asyncio.Event) -> None:
    """The worker's publishing loop, when `event_broker_url` is set."""
    if settings.event_broker_url is None:
        return
    publisher = BrokerPublisher(
        store,
        settings.event_broker_url.get_secret_value(),
        exchange=settings.event_broker_exchange,
        queue=settings.event_broker_queue,
    )
    await publisher.run(stop)
