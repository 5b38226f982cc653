"""Webhooks to real receivers on loopback: signatures, retries, giving up, concurrent loops."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from linkcert.config import Settings
from linkcert.keys import generate_master_key
from linkcert.notify import (
    DeliveryRunner,
    NotificationKind,
    Notifier,
    SignatureError,
    run_deliveries,
    verify_signature,
)
from linkcert.notify.delivery import DEFAULT_LEASE, Sender, claim_due, senders_from_settings
from linkcert.notify.jobs import Attempt, DeliveryJob
from linkcert.notify.log import list_deliveries
from linkcert.notify.webhooks import signature_header
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Domain, Store, utcnow
from linkcert.store.models import Delivery
from linkcert.testbed.waiting import wait_for_async
from tests.notify_support import (
    SECRET,
    T0,
    Clock,
    WebhookBehaviour,
    WebhookReceiver,
    add_customer,
    give_certificate,
)


def hook_settings(*urls: str, timeout: float = 5.0) -> Settings:
    return Settings(webhook_urls=urls, webhook_secret=SecretStr(SECRET), webhook_timeout=timeout)


def record(
    store: Store, settings: Settings, clock: Clock, domain_id: int, kind: NotificationKind
) -> None:
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        Notifier.from_settings(settings, clock).emit(
            session, kind, domain, message="Something happened.", details={"extra": 1}
        )


def test_a_claim_takes_no_more_than_asked_and_never_what_another_holds(store: Store) -> None:
    clock = Clock()
    settings = hook_settings("http://127.0.0.1:9/hook")
    for number in range(10):
        domain_id = add_customer(store, f"c{number}", f"links.c{number}.test", [])
        record(store, settings, clock, domain_id, NotificationKind.SECURED)
    first = claim_due(store, "one", clock(), 3)
    second = claim_due(store, "two", clock(), 3)
    assert len(first) == len(second) == 3
    assert not {job.id for job in first} & {job.id for job in second}
    # An expired lease (its process died) makes the delivery claimable again.
    again = claim_due(store, "three", clock() + DEFAULT_LEASE + timedelta(seconds=1), 10)
    assert len(again) == 10


def the_delivery(store: Store) -> Delivery:
    with store.session() as session:
        return session.scalars(select(Delivery)).one()


async def test_the_receiver_checks_the_signature_and_reads_the_event(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(store, "alpha", "links.alpha.test", [])
    give_certificate(store, domain_id, T0, T0 + timedelta(days=90), serial="ab12")
    with WebhookReceiver() as receiver:
        settings = hook_settings(receiver.url)
        record(store, settings, clock, domain_id, NotificationKind.SECURED)
        runner = DeliveryRunner(store, senders_from_settings(settings))
        assert await runner.deliver_due(clock()) == 1
        await runner.aclose()

    (hook,) = receiver.requests
    assert hook.verified
    assert hook.headers["Content-Type"] == "application/json"
    event = json.loads(hook.body)
    assert set(event) == {"id", "type", "created_at", "domain", "account", "data"}
    assert event["type"] == "secured" and event["domain"] == "links.alpha.test"
    assert event["id"].startswith("evt_") and event["id"] == hook.headers["Linkcert-Event-Id"]
    assert event["created_at"] == T0.isoformat()
    assert event["account"]["name"] == "alpha"
    assert event["data"]["serial"] == "ab12" and event["data"]["extra"] == 1
    assert event["data"]["message"] == "Something happened."
    assert the_delivery(store).status == "delivered"


def test_signatures_fail_for_another_body_secret_or_time() -> None:
    body = b'{"id":"evt_1"}'
    now = time.time()
    header = signature_header(SECRET, int(now), body)
    assert verify_signature(SECRET, header, body, now=now) == int(now)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, header, body + b" ", now=now)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("another-secret", header, body, now=now)
    with pytest.raises(SignatureError, match="too old"):
        verify_signature(SECRET, header, body, now=now + 3600)
    with pytest.raises(SignatureError, match="no t="):
        verify_signature(SECRET, "v1=abc", body, now=now)
    # A receiver may hold two secrets while the sender switches: any v1 that matches will do.
    rotated = header + ",v1=" + "0" * 64
    assert verify_signature(SECRET, rotated, body, now=now) == int(now)


async def test_a_receiver_that_fails_twice_gets_it_on_the_third_try(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(store, "alpha", "links.alpha.test", [])
    with WebhookReceiver(WebhookBehaviour(fail_first=2)) as receiver:
        settings = hook_settings(receiver.url)
        record(store, settings, clock, domain_id, NotificationKind.MOVED)
        runner = DeliveryRunner(store, senders_from_settings(settings), rng=random.Random(7))
        assert await runner.deliver_due(clock()) == 1
        first_retry = the_delivery(store).next_attempt_at
        assert first_retry is not None
        assert timedelta(seconds=10) <= first_retry - T0 <= timedelta(seconds=12)
        assert await runner.deliver_due(clock()) == 0  # not due yet

        clock.now = first_retry
        assert await runner.deliver_due(clock()) == 1
        second_retry = the_delivery(store).next_attempt_at
        assert second_retry is not None
        assert timedelta(seconds=60) <= second_retry - clock.now <= timedelta(seconds=72)

        clock.now = second_retry
        assert await runner.deliver_due(clock()) == 1
        await runner.aclose()

    assert len(receiver.requests) == 3
    assert [h.headers["Linkcert-Delivery-Attempt"] for h in receiver.requests] == ["1", "2", "3"]
    # Every retry carries the same event: one id, one body.
    assert len({h.body for h in receiver.requests}) == 1
    (entry,) = list_deliveries(store)
    assert (entry.status, entry.attempts, entry.delivered_at) == ("delivered", 3, second_retry)
    assert entry.last_error == "HTTP 500"
    assert entry.next_attempt_at is None


async def test_a_receiver_that_never_answers_is_given_up_after_a_day(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(store, "alpha", "links.alpha.test", [])
    with WebhookReceiver(WebhookBehaviour(hang=True)) as receiver:
        settings = hook_settings(receiver.url, timeout=0.2)
        record(store, settings, clock, domain_id, NotificationKind.RELEASED)
        runner = DeliveryRunner(store, senders_from_settings(settings), rng=random.Random(3))
        waits: list[timedelta] = []
        for _ in range(20):
            assert await runner.deliver_due(clock()) == 1
            row = the_delivery(store)
            if row.status != "pending":
                break
            assert row.next_attempt_at is not None
            waits.append(row.next_attempt_at - clock.now)
            clock.now = row.next_attempt_at
        await runner.aclose()

    row = the_delivery(store)
    assert row.status == "failed" and row.next_attempt_at is None
    assert row.last_error == "no answer within 0.2 s"
    assert row.attempts == len(receiver.requests) == len(waits) + 1
    # 10 s, 1 min, 10 min, 1 h, then every 6 h (each up to 20% later), never past 24 h.
    bases = [10, 60, 600, 3600] + [21600] * (len(waits) - 4)
    for wait, base in zip(waits, bases, strict=True):
        assert timedelta(seconds=base) <= wait <= timedelta(seconds=base * 1.2)
    assert clock.now - T0 <= timedelta(hours=24)
    assert 6 <= row.attempts <= 9


async def test_redirects_are_not_followed(store: Store) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        clock = Clock()
        domain_id = add_customer(store, "alpha", "links.alpha.test", [])
        settings = hook_settings(f"http://127.0.0.1:{server.server_address[1]}/hook")
        record(store, settings, clock, domain_id, NotificationKind.REVOKED)
        runner = DeliveryRunner(store, senders_from_settings(settings))
        await runner.deliver_due(clock())
        await runner.aclose()
    finally:
        server.shutdown()
        server.server_close()
    row = the_delivery(store)
    assert row.status == "pending" and row.last_error is not None
    assert row.last_error.startswith("HTTP 307: redirects are not followed")


class TrackingSender:
    """Wraps a sender to note what its loop sent; can hold its sends until a gate opens."""

    channel = "webhook"

    def __init__(
        self,
        inner: Sender,
        *,
        wait_for: asyncio.Event | None = None,
        opens: asyncio.Event | None = None,
    ) -> None:
        self.inner = inner
        self.wait_for = wait_for
        self.opens = opens
        self.sent: list[int] = []

    async def send(self, job: DeliveryJob, now: datetime) -> Attempt:
        if self.wait_for is not None:
            await self.wait_for.wait()
        attempt = await self.inner.send(job, now)
        self.sent.append(job.id)
        if self.opens is not None:
            self.opens.set()
        return attempt

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_two_delivery_loops_never_send_the_same_delivery_twice(postgres_url: str) -> None:
    first, second = Store(postgres_url), Store(postgres_url)
    first.migrate()
    try:
        with WebhookReceiver() as receiver:
            settings = hook_settings(receiver.url)
            notifier = Notifier.from_settings(settings)
            for number in range(40):
                domain_id = add_customer(first, f"c{number}", f"links.c{number}.test", [])
                with first.session() as session:
                    domain = session.get(Domain, domain_id)
                    assert domain is not None
                    notifier.emit(session, NotificationKind.SECURED, domain, message="ok")

            # The first loop's sends wait until the second loop has sent one: both loops are
            # then surely claiming from the same backlog at the same time.
            gate = asyncio.Event()
            trackers = [
                TrackingSender(senders_from_settings(settings)["webhook"], wait_for=gate),
                TrackingSender(senders_from_settings(settings)["webhook"], opens=gate),
            ]
            stop = asyncio.Event()
            loops = [
                asyncio.create_task(
                    run_deliveries(
                        store,
                        settings,
                        stop,
                        senders={"webhook": tracker},
                        poll_interval=0.05,
                        batch=3,
                        owner=f"loop-{n}",
                    )
                )
                for n, (store, tracker) in enumerate(zip((first, second), trackers, strict=True))
            ]

            def all_delivered() -> bool:
                return len(list_deliveries(first, status="delivered", limit=1000)) >= 40

            try:
                await wait_for_async(all_delivered, "every delivery delivered", interval=0.05)
            finally:
                stop.set()
                gate.set()  # never leave the first loop waiting, even when the test fails
                await asyncio.gather(*loops)

        assert trackers[0].sent and trackers[1].sent
        assert not set(trackers[0].sent) & set(trackers[1].sent)
        event_ids = [hook.headers["Linkcert-Event-Id"] for hook in receiver.requests]
        assert len(event_ids) == 40 and len(set(event_ids)) == 40
        assert all(hook.verified for hook in receiver.requests)
        with first.session() as session:
            rows = session.scalars(select(Delivery)).all()
            assert {(row.status, row.attempts) for row in rows} == {("delivered", 1)}
    finally:
        first.close()
        second.close()


async def test_a_worker_process_sends_alerts_and_serves_metrics(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'linkcert.sqlite3'}"
    store = Store(db_url)
    store.migrate()
    domain_id = add_customer(store, "alpha", "links.alpha.test", [])
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        domain.next_attempt_at = None  # the worker has nothing to do: no DNS lookups
    with WebhookReceiver() as receiver:
        settings = Settings(
            database_url=db_url,
            data_dir=tmp_path,
            allow_test_domains=True,
            cname_targets=("track.platform.test",),
            nameservers=("127.0.0.1:9",),
            master_key=SecretStr(generate_master_key("test")),
            tracking_key=SecretStr("t" * 40),
            webhook_urls=(receiver.url,),
            webhook_secret=SecretStr(SECRET),
            metrics_listen="127.0.0.1:0",
        )
        record(store, settings, Clock(utcnow()), domain_id, NotificationKind.SECURED)
        runtime = Runtime(settings, Roles(worker=True, edge=False, api=False), store=store)
        await runtime.start()
        try:
            await wait_for_async(lambda: receiver.requests, "the webhook received", timeout=30)
            assert runtime.metrics_listener is not None
            async with httpx.AsyncClient(trust_env=False) as http:
                page = await http.get(f"http://127.0.0.1:{runtime.metrics_listener.port}/metrics")
        finally:
            await runtime.aclose()
    assert receiver.requests[0].verified
    assert "linkcert_domains{" in page.text and "linkcert_delivery_attempts_total" in page.text
