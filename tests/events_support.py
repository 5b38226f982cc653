"""What the event tests share: an HTTPS webhook receiver on loopback, and a RabbitMQ reader.

RabbitMQ is the server this machine runs at 127.0.0.1:5672 (guest/guest); each test uses an
exchange and a queue of its own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiormq
import pytest

from linkcert.tracking.spool import EventSpool, link_part
from linkcert.tracking.tokens import TrackedLink
from tests.certs_support import ThrowawayCA, pem

BROKER_URL = os.environ.get("LINKCERT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


async def require_broker() -> None:
    """Skip without the broker, except on CI, where that is a failure."""
    try:
        connection = await asyncio.wait_for(aiormq.connect(BROKER_URL), 5)
        await connection.close()
    except Exception as exc:
        if os.environ.get("CI"):
            raise AssertionError(f"RabbitMQ is not reachable at {BROKER_URL}: {exc}") from exc
        pytest.skip(f"RabbitMQ is not reachable at {BROKER_URL}: {exc}")


@dataclass
class Received:
    """What a receiver got: (headers, body) per request, in order."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    status: int = 200
    location: str | None = None

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            bodies = [body for _, body in self.requests]
        found: list[dict[str, Any]] = []
        for body in bodies:
            found.extend(json.loads(body)["data"]["events"])
        return found


@contextmanager
def https_receiver(ca: ThrowawayCA) -> Iterator[tuple[int, Received]]:
    """An HTTPS server on 127.0.0.1 with a certificate for `localhost` from `ca`."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with received.lock:
                received.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(received.status)
            if received.location:
                self.send_header("Location", received.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    leaf = ca.issue("localhost")
    with tempfile.TemporaryDirectory() as directory:
        cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert.write_bytes(leaf.chain_pem)
        key.write_bytes(leaf.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1], received
        finally:
            server.shutdown()
            server.server_close()


def ca_bundle(ca: ThrowawayCA, directory: Path) -> Path:
    path = directory / "webhook-ca.pem"
    path.write_bytes(pem(ca.root))
    return path


def unique_name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


async def drain_queue(queue: str, idle: float = 1.0) -> list[tuple[str, str, dict[str, Any]]]:
    """Every message in `queue` (message id, routing key, body), acknowledged, until none has
    come for `idle` seconds."""
    connection = await aiormq.connect(BROKER_URL)
    got: list[tuple[str, str, dict[str, Any]]] = []
    try:
        channel = await connection.channel()
        while True:
            message = await channel.basic_get(queue, no_ack=True)
            if message.delivery_tag is None:  # empty: look once more after a pause
                await asyncio.sleep(idle)
                message = await channel.basic_get(queue, no_ack=True)
                if message.delivery_tag is None:
                    return got
            assert message.header.properties.message_id is not None
            got.append(
                (
                    message.header.properties.message_id,
                    str(getattr(message.delivery, "routing_key", "")),
                    json.loads(message.body),
                )
            )
    finally:
        await connection.close()


async def delete_broker_objects(exchange: str, queue: str) -> None:
    connection = await aiormq.connect(BROKER_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


# The event spool's tests ------------------------------------------------------------------

SPOOL_DOMAIN = "links.alpha.test"  # make_world's first account's


def spool_link(number: int) -> bytes:
    return link_part(
        SPOOL_DOMAIN,
        TrackedLink(
            link_id=number,
            destination=f"https://shop.example/{number}",
            data=f"n={number}".encode(),
            minted_at=1_700_000_000,
            epoch=0,
            key_id=1,
            version=2,
        ),
    )


def fill_spool(spool: EventSpool, first: int, count: int) -> None:
    """Events numbered from `first` (in their link's data), over 50 links."""
    parts = [spool_link(number) for number in range(50)]
    for number in range(first, first + count):
        spool.append(
            parts[number % 50],
            1_800_000_000.0 + number / 1000,
            number % 3 == 0,
            f"192.0.2.{number % 200}",
            b"Mozilla/5.0 (spool test)" if number % 2 else None,
            "head" if number % 5 == 0 else None,
        )
