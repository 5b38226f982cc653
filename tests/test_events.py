"""Click and open events: writing them, the API cursor, accounts' endpoints and their address
rules, webhook batches through the outbox, the broker (a real RabbitMQ, taken away for a while),
retention, and the note an edge leaves for its successor."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from linkcert.api import create_app
from linkcert.config import Settings
from linkcert.events.broker import BrokerPublisher
from linkcert.events.dispatch import dispatch_once
from linkcert.events.endpoints import EndpointRefused, add_endpoint, check_address
from linkcert.events.journal import Journal, report_lost
from linkcert.events.store import client_ip, prune, save_events
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.notify.delivery import DeliveryRunner, senders_from_settings
from linkcert.notify.webhooks import verify_signature
from linkcert.store import LinkEvent, Store
from linkcert.store.models import Delivery, Notification
from linkcert.tracking import (
    Click,
    ClickRecorder,
    Minter,
    TrackedKind,
    read_token,
    tracking_key_from_secret,
)
from tests.api_support import SETTINGS, bearer, client, make_world
from tests.certs_support import ThrowawayCA
from tests.events_support import (
    BROKER_URL,
    ca_bundle,
    delete_broker_objects,
    drain_queue,
    https_receiver,
    require_broker,
    unique_name,
)
from tests.tcpproxy_support import TcpProxy

KEY = tracking_key_from_secret("events test secret, long enough for it")
MASTER = MasterKeys.parse(generate_master_key("events"))
HOSTILE = bytes(range(256))[1:]  # 255 bytes, every value but 0 (and 0 is in others)


def _clicks(domain: str, count: int, start: int = 0) -> list[Click]:
    minter = Minter(KEY, domain)
    clicks = []
    for number in range(start, start + count):
        data = HOSTILE if number % 50 == 0 else f"\x00n={number};{domain}".encode()
        token = minter.token(f"https://shop.example/{number}", data, minted_at=1_800_000_000)
        link = read_token(KEY, domain, token)
        kind: TrackedKind = "open" if number % 2 else "click"
        at = datetime.fromtimestamp(1_800_000_100, UTC)
        clicks.append(
            Click(domain, None, kind, at, link, "203.0.113.77", b"Mozilla/5.0 " + b"x" * 600)
        )
    return clicks


def test_client_addresses_full_truncated_or_none() -> None:
    assert client_ip("203.0.113.77", "full") == "203.0.113.77"
    assert client_ip("203.0.113.77", "truncated") == "203.0.113.0/24"
    assert client_ip("2001:db8:1:2::7", "truncated") == "2001:db8:1::/48"
    assert client_ip("::ffff:198.51.100.9", "truncated") == "198.51.100.0/24"
    assert client_ip("203.0.113.77", "none") is None
    assert client_ip(None, "full") is None


async def test_the_api_cursor_pages_in_order_and_keeps_accounts_apart(store: Store) -> None:
    world = make_world(store)
    save_events(store, _clicks("links.alpha.test", 120), "truncated")
    save_events(store, _clicks("links.beta.test", 30), "truncated")
    save_events(store, _clicks("links.alpha.test", 5, start=120), "truncated")
    app = create_app(store, SETTINGS, rate_limit=None)
    async with client(app) as http:

        async def read_all(token: str, limit: int) -> list[dict[str, object]]:
            seen: list[dict[str, object]] = []
            after = "0"
            for _ in range(100):
                page = await http.get(
                    f"/api/v1/events?after={after}&limit={limit}", headers=bearer(token)
                )
                assert page.status_code == 200, page.text
                body = page.json()
                if not body["events"]:
                    assert body["next"] == after
                    return seen
                seen.extend(body["events"])
                after = body["next"]
            raise AssertionError("the cursor never ran dry")

        alpha = await read_all(world.a_token, 17)
        beta = await read_all(world.b_token, 1000)
        everyone = await read_all(world.operator, 50)
        schema = (await http.get("/openapi.json")).json()
    assert len(alpha) == 125 and len(beta) == 30 and len(everyone) == 155
    assert {e["domain"] for e in alpha} == {"links.alpha.test"}
    assert {e["account_id"] for e in beta} == {world.b_id}
    ids = [int(str(e["id"])) for e in everyone]
    assert ids == sorted(ids) and len(set(ids)) == 155
    first = alpha[0]
    assert base64.b64decode(str(first["data_base64"])) == HOSTILE
    assert first["data"] is not None or True
    assert first["seconds_since_mint"] == 100
    assert first["client_ip"] == "203.0.113.0/24"
    assert len(str(first["user_agent"]).encode()) == 512
    second = alpha[1]
    assert second["kind"] == "open" and second["data"] == "\x00n=1;links.alpha.test"
    assert "/api/v1/events" in schema["paths"]
    assert "/api/v1/accounts/{account_id}/webhooks" in schema["paths"]


def test_endpoint_addresses_are_checked() -> None:
    import ipaddress

    for address in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.1.1", "::1", "fd00::1"):
        with pytest.raises(EndpointRefused):
            check_address(ipaddress.ip_address(address), allow_private=False)
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"):
        with pytest.raises(EndpointRefused, match="metadata"):
            check_address(ipaddress.ip_address(address), allow_private=True)
    check_address(ipaddress.ip_address("127.0.0.1"), allow_private=True)
    check_address(ipaddress.ip_address("93.184.215.14"), allow_private=False)


async def test_endpoints_are_refused_on_save_unless_https_and_public(store: Store) -> None:
    world = make_world(store)
    settings = SETTINGS.model_copy(update={"master_key": SecretStr(generate_master_key("x"))})
    app = create_app(store, settings, rate_limit=None)
    async with client(app) as http:
        for url, words in (
            ("http://example.com/hook", "https"),
            ("https://127.0.0.1/hook", "loopback"),
            ("https://localhost:8443/hook", "loopback"),
            ("https://10.0.0.8/hook", "private"),
            ("https://169.254.169.254/latest/meta-data", "metadata"),
            ("https://[::1]/hook", "loopback"),
            ("https://user:pw@example.com/", "credentials"),
        ):
            answer = await http.post(
                f"/api/v1/accounts/{world.a_id}/webhooks",
                json={"url": url},
                headers=bearer(world.a_token),
            )
            assert answer.status_code == 422, (url, answer.text)
            assert words in answer.json()["detail"], answer.text
        other = await http.post(
            f"/api/v1/accounts/{world.b_id}/webhooks",
            json={"url": "https://example.com/"},
            headers=bearer(world.a_token),
        )
        assert other.status_code == 404


async def test_batches_reach_each_accounts_endpoint_signed_once(
    store: Store, tmp_path: Path
) -> None:
    ca = ThrowawayCA.create("Webhook Receiver CA")
    world = make_world(store)
    settings = Settings(
        webhook_allow_private_addresses=True,
        webhook_ca_bundle=ca_bundle(ca, tmp_path),
        event_webhook_batch=40,
    )
    with https_receiver(ca) as (port_a, got_a), https_receiver(ca) as (port_b, got_b):
        hook_a = add_endpoint(
            store, MASTER, world.a_id, f"https://localhost:{port_a}/a", allow_private=True
        )
        add_endpoint(store, MASTER, world.b_id, f"https://localhost:{port_b}/b", allow_private=True)
        save_events(store, _clicks("links.alpha.test", 100), "full")
        save_events(store, _clicks("links.beta.test", 10), "full")
        assert dispatch_once(store, "me", 40) == 110
        assert dispatch_once(store, "me", 40) == 0  # the cursor moved with the batches
        runner = DeliveryRunner(store, senders_from_settings(settings, MASTER), batch=50)
        try:
            assert await runner.deliver_due(datetime.now(UTC)) == 4  # 40 + 40 + 20, and 10
        finally:
            await runner.aclose()
        # Batches may arrive in any order: read the events in their id order.
        events_a = sorted(got_a.events(), key=lambda e: int(e["id"]))
        events_b = got_b.events()
        assert len(events_a) == 100 and len(events_b) == 10
        assert {e["domain"] for e in events_a} == {"links.alpha.test"}
        assert {e["domain"] for e in events_b} == {"links.beta.test"}
        assert base64.b64decode(events_a[0]["data_base64"]) == HOSTILE
        headers, body = got_a.requests[0]
        assert hook_a.secret is not None
        verify_signature(hook_a.secret, headers["linkcert-signature"], body)
        assert headers["host"] == f"localhost:{port_a}"
    with store.session() as session:
        statuses = session.scalars(select(Delivery.status)).all()
    assert statuses and set(statuses) == {"delivered"}


async def test_at_connect_time_a_private_address_is_refused_and_redirects_not_followed(
    store: Store, tmp_path: Path
) -> None:
    ca = ThrowawayCA.create("Webhook Receiver CA")
    world = make_world(store)
    with https_receiver(ca) as (port, got):
        add_endpoint(store, MASTER, world.a_id, f"https://localhost:{port}/", allow_private=True)
        save_events(store, _clicks("links.alpha.test", 3), "full")
        dispatch_once(store, "me", 100)
        # Saved while private addresses were allowed; the sender does not allow them: the
        # name resolves to loopback at connect time, and nothing is sent.
        strict = Settings(webhook_ca_bundle=ca_bundle(ca, tmp_path))
        runner = DeliveryRunner(store, senders_from_settings(strict, MASTER))
        await runner.deliver_due(datetime.now(UTC))
        await runner.aclose()
        assert got.requests == []
        with store.session() as session:
            row = session.scalars(select(Delivery)).one()
            assert row.status == "pending" and "loopback" in (row.last_error or "")
            row.next_attempt_at = datetime.now(UTC)
        got.status, got.location = 302, "https://169.254.169.254/"
        allowed = Settings(
            webhook_allow_private_addresses=True, webhook_ca_bundle=ca_bundle(ca, tmp_path)
        )
        runner = DeliveryRunner(store, senders_from_settings(allowed, MASTER))
        await runner.deliver_due(datetime.now(UTC))
        await runner.aclose()
        assert len(got.requests) == 1  # one POST, the redirect not followed
        with store.session() as session:
            assert "redirects are not followed" in (
                session.scalars(select(Delivery.last_error)).one() or ""
            )


@pytest.mark.postgres
@pytest.mark.broker
async def test_the_broker_gets_every_event_even_after_being_away(
    postgres_url: str,
) -> None:
    await require_broker()
    store = Store(postgres_url)
    store.migrate()
    exchange, queue = unique_name("lc.test.events"), unique_name("lc.test.events")
    host_port = BROKER_URL.rsplit("@", 1)[1].strip("/").split(":")
    proxy = TcpProxy(host_port[0], int(host_port[1])).start()
    url = BROKER_URL.replace(f"{host_port[0]}:{host_port[1]}", f"127.0.0.1:{proxy.port}")
    publisher = BrokerPublisher(
        store, url, exchange=exchange, queue=queue, poll_interval=0.1, retry_max=0.5
    )
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        make_world(store)
        save_events(store, _clicks("links.alpha.test", 300), "full")
        for _ in range(200):
            if publisher.published >= 300:
                break
            await asyncio.sleep(0.05)
        proxy.stop()  # the broker goes away
        save_events(store, _clicks("links.beta.test", 200), "full")
        save_events(store, _clicks("links.alpha.test", 200, start=300), "full")
        await asyncio.sleep(2.0)
        away = publisher.published
        proxy.start()  # and comes back
        for _ in range(400):
            if publisher.published >= 700:
                break
            await asyncio.sleep(0.05)
        assert publisher.published >= 700, (away, publisher.published, publisher.failures)
        assert publisher.failures >= 1
        messages = await drain_queue(queue)
    finally:
        stop.set()
        await task
        proxy.stop()
        await delete_broker_objects(exchange, queue)
        store.close()
    unique = {message_id: (key, body) for message_id, key, body in messages}
    assert len(unique) == 700  # repeats are allowed, losses are not
    assert all(body["id"] == message_id for message_id, (_, body) in unique.items())
    with_hostile = [b for _, b in unique.values() if base64.b64decode(b["data_base64"]) == HOSTILE]
    assert len(with_hostile) == 14
    assert {key.split(".")[0] for key, _ in unique.values()} == {"click", "open"}


async def test_retention_prunes_old_events_and_finished_notifications(store: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    clicks = [
        Click(c.domain, c.link_id, c.kind, old if n < 30 else c.at, c.link, c.client)
        for n, c in enumerate(_clicks("links.example.test", 50))
    ]
    save_events(store, clicks, "none")
    with store.session() as session:
        for status in ("delivered", "failed", "pending"):
            notification = Notification(
                public_id=f"evt_{status}",
                kind="secured",
                domain_name="links.example.test",
                message="",
                data={},
                created_at=old,
            )
            session.add(notification)
            session.flush()
            session.add(
                Delivery(
                    notification_id=notification.id,
                    channel="webhook",
                    target="https://example.com/",
                    status=status,
                    attempts=1,
                    created_at=old,
                    updated_at=old,
                )
            )
    events, notifications = prune(store, datetime.now(UTC) - timedelta(days=30), batch=7)
    assert (events, notifications) == (30, 2)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(LinkEvent)) == 20
        assert session.scalars(select(Notification.public_id)).all() == ["evt_pending"]


async def test_a_dead_edges_note_says_how_many_events_may_be_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "edge-journal"
    directory.mkdir()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (directory / f"{dead}.json").write_text(
        json.dumps({"pid": dead, "at": 1_800_000_000, "pending": 412, "recorded_last_second": 88})
    )
    (directory / f"{os.getpid()}.json").write_text("{}")  # a live process's: left alone
    with caplog.at_level(logging.WARNING, "linkcert.events.journal"):
        assert report_lost(directory) == [(dead, 500)]
    assert "about 500 click and open events may have been lost" in caplog.text
    assert not (directory / f"{dead}.json").exists()
    assert (directory / f"{os.getpid()}.json").exists()

    recorder = ClickRecorder(lambda batch: None)
    journal = Journal(directory, recorder, interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(journal.run(stop))
    await asyncio.sleep(0.2)
    assert json.loads(journal.path.read_text())["pid"] == os.getpid()
    stop.set()
    await task
    journal.remove()
    assert not journal.path.exists()
    await recorder.aclose()
