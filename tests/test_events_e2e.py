"""10,000 clicks and opens over HTTPS across two edge processes (`linkcert edge --processes 2`)
for two accounts, out through every consumer: the API cursor, each account's webhook receiver
and RabbitMQ (taken away for a while in the middle). Each event comes out exactly once per
consumer once repeats are dropped by id, with its data intact, and no account sees the other's.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from linkcert.api import create_app
from linkcert.auth import create_token
from linkcert.config import Settings
from linkcert.events.broker import BrokerPublisher
from linkcert.events.dispatch import run_dispatch
from linkcert.events.endpoints import add_endpoint
from linkcert.keys import MasterKeys
from linkcert.notify.delivery import run_deliveries
from linkcert.store import Account, Store
from linkcert.tracking import Minter, TrackingKeys, tracking_key_from_secret
from tests.certs_support import ThrowawayCA, pem
from tests.e2e_support import TRACKING_SECRET
from tests.edge_processes_support import CLICKS, MASTER_KEY, running_edge, serve_certificate
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

pytestmark = [pytest.mark.postgres, pytest.mark.broker]

PER_ACCOUNT = 5_000
CONNECTIONS = 16
DOMAINS = ("links.alpha.test", "links.beta.test")


def _data(domain: str, number: int) -> bytes:
    """Each click's own data: text for most, hostile binary of the maximum length for some."""
    if number % 7 == 0:
        head = f"{domain}#{number}|".encode()
        return head + bytes((number + i) % 256 for i in range(255 - len(head)))
    return f"msg={number:06d};rcpt={domain};\x00\xff".encode("latin-1")


def _requests() -> list[tuple[str, str, bytes]]:
    """(domain, request path, data) for every click and open, interleaved across accounts."""
    keys = TrackingKeys.of(tracking_key_from_secret(TRACKING_SECRET))
    minters = {domain: Minter(keys, domain) for domain in DOMAINS}
    planned = []
    for number in range(PER_ACCOUNT):
        for domain in DOMAINS:
            data = _data(domain, number)
            token = minters[domain].token(
                f"https://shop.example/{domain}/{number}", data, minted_at=1_800_000_000
            )
            path = f"/o/{token}" if number % 2 else f"/c/{token}"
            planned.append((domain, path, data))
    return planned


async def _click_all(port: int, root_pem: str, planned: list[tuple[str, str, bytes]]) -> int:
    """Send every request over keep-alive HTTPS connections; return how many were answered
    as expected."""
    context = ssl.create_default_context(cadata=root_pem)
    answered = 0

    async def one_connection(share: list[tuple[str, str, bytes]], domain: str) -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=domain
        )
        try:
            for _, path, _ in share:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {domain}\r\n"
                    "User-Agent: Mozilla/5.0 (events test)\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                assert status == (200 if path.startswith("/o/") else 302), head
                answered += 1
        finally:
            writer.close()

    jobs = []
    for index in range(CONNECTIONS):
        domain = DOMAINS[index % 2]
        mine = [p for p in planned if p[0] == domain]
        share = mine[index // 2 :: CONNECTIONS // 2]
        jobs.append(one_connection(share, domain))
    await asyncio.gather(*jobs)
    return answered


async def _until(check: Any, what: str, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def test_ten_thousand_events_out_once_per_consumer(postgres_url: str, tmp_path: Path) -> None:
    await require_broker()
    store = Store(postgres_url)
    store.migrate()
    ca = ThrowawayCA.create("Events E2E CA")
    keys = MasterKeys.parse(MASTER_KEY)
    for domain in DOMAINS:
        serve_certificate(store, ca, domain)
    with store.session() as session:
        account_ids = {
            domain: session.query(Account.id).filter(Account.name == domain).scalar()
            for domain in DOMAINS
        }
    tokens = {domain: create_token(store, account_ids[domain], domain)[0] for domain in DOMAINS}
    operator, _ = create_token(store, None, "operator")
    exchange, queue = unique_name("lc.e2e.events"), unique_name("lc.e2e.events")
    broker_host, broker_port = BROKER_URL.rsplit("@", 1)[1].strip("/").split(":")
    proxy = TcpProxy(broker_host, int(broker_port)).start()
    settings = Settings(
        database_url=postgres_url,
        master_key=SecretStr(MASTER_KEY),
        tracking_key=SecretStr(TRACKING_SECRET),
        webhook_allow_private_addresses=True,
        webhook_ca_bundle=ca_bundle(ca, tmp_path),
        allow_test_domains=True,
    )
    planned = _requests()
    stop = asyncio.Event()
    publisher = BrokerPublisher(
        store,
        BROKER_URL.replace(f"{broker_host}:{broker_port}", f"127.0.0.1:{proxy.port}"),
        exchange=exchange,
        queue=queue,
        poll_interval=0.2,
        retry_max=1.0,
    )
    app = create_app(store, settings, rate_limit=None)
    with (
        https_receiver(ca) as (port_a, got_a),
        https_receiver(ca) as (port_b, got_b),
        running_edge(postgres_url, tmp_path, pem(ca.root).decode()) as edge,
    ):
        received = {DOMAINS[0]: got_a, DOMAINS[1]: got_b}
        for domain, port in zip(DOMAINS, (port_a, port_b), strict=True):
            add_endpoint(
                store, keys, account_ids[domain], f"https://localhost:{port}/", allow_private=True
            )
        consumers = [
            asyncio.create_task(run_dispatch(store, 100, stop, poll_interval=0.2)),
            asyncio.create_task(run_deliveries(store, settings, stop, keys=keys, batch=50)),
            asyncio.create_task(publisher.run(stop)),
        ]
        try:
            half = len(planned) // 2
            answered = await _click_all(edge.https_port, edge.root_pem, planned[:half])
            proxy.stop()  # the broker goes away for a while
            answered += await _click_all(edge.https_port, edge.root_pem, planned[half:])
            await asyncio.sleep(2.0)
            proxy.start()
            assert answered == len(planned)
            assert 0 not in edge.counts(CLICKS), edge.counts(CLICKS)  # both processes served

            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api"
            ) as http:

                async def read_events(token: str) -> list[dict[str, Any]]:
                    seen: list[dict[str, Any]] = []
                    after = "0"
                    while True:
                        page = await http.get(
                            f"/api/v1/events?after={after}&limit=1000",
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        body = page.json()
                        if not body["events"]:
                            return seen
                        seen.extend(body["events"])
                        after = body["next"]

                async def all_in_store() -> bool:
                    return len(await read_events(operator)) >= len(planned)

                await _until(all_in_store, "the edges to write every event")
                by_api = {domain: await read_events(tokens[domain]) for domain in DOMAINS}

            async def webhooks_done() -> bool:
                return all(
                    len({e["id"] for e in got.events()}) >= PER_ACCOUNT for got in received.values()
                )

            await _until(webhooks_done, "every webhook batch")
            await _until(
                lambda: asyncio.sleep(0, publisher.published >= len(planned)),
                "the broker to confirm every event",
            )
            from_broker = await drain_queue(queue)
        finally:
            stop.set()
            await asyncio.gather(*consumers, return_exceptions=True)
            proxy.stop()
            await delete_broker_objects(exchange, queue)
    assert publisher.failures >= 1  # it did notice the broker was away

    expected = {
        domain: Counter(data for d, _, data in planned if d == domain) for domain in DOMAINS
    }

    def check(events: list[dict[str, Any]], domain: str, consumer: str) -> None:
        unique = {event["id"]: event for event in events}
        assert len(unique) == PER_ACCOUNT, (consumer, domain, len(unique))
        assert {e["domain"] for e in unique.values()} == {domain}, consumer
        assert {e["account_id"] for e in unique.values()} == {account_ids[domain]}, consumer
        datas = Counter(base64.b64decode(e["data_base64"]) for e in unique.values())
        assert datas == expected[domain], consumer
        assert Counter(e["kind"] for e in unique.values()) == {
            "click": PER_ACCOUNT // 2,
            "open": PER_ACCOUNT // 2,
        }

    broker_events = [body for _, _, body in from_broker]
    all_ids = set()
    for domain in DOMAINS:
        check(by_api[domain], domain, "api")
        check(received[domain].events(), domain, "webhook")
        mine = [e for e in broker_events if e["account_id"] == account_ids[domain]]
        check(mine, domain, "broker")
        all_ids |= {e["id"] for e in by_api[domain]}
    assert len(all_ids) == len(planned)
    assert {message_id for message_id, _, _ in from_broker} == all_ids
    assert {key for _, key, _ in from_broker} == {
        f"{kind}.{account_ids[domain]}" for kind in ("click", "open") for domain in DOMAINS
    }
    assert not list((tmp_path / "edge-journal").glob("*.json"))  # a clean stop leaves no note
    store.close()
