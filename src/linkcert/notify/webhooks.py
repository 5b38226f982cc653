"""Webhooks: the JSON body, its signature, and one POST with a hard time limit.

The signature follows the common `t=<unix time>,v1=<hex HMAC-SHA256>` scheme over
`"<t>.<body>"`, so a receiver can check both who sent the body and that it is fresh (a replayed
request carries an old `t`). `verify_signature()` is what a receiver in Python would run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from linkcert import __version__
from linkcert.events.endpoints import EndpointRefused, check_url, resolve_async, secret_context
from linkcert.keys import MasterKeys
from linkcert.notify.jobs import Attempt, DeliveryJob, NotificationView

SIGNATURE_HEADER = "Linkcert-Signature"
DEFAULT_TOLERANCE = 300  # seconds a receiver should accept between `t` and its own clock
MAX_ERROR_BODY = 300


def webhook_payload(view: NotificationView) -> dict[str, Any]:
    account = (
        {"id": view.account_id, "name": view.account_name} if view.account_id is not None else None
    )
    return {
        "id": view.public_id,
        "type": view.kind,
        "created_at": view.created_at.isoformat(),
        "domain": view.domain,
        "account": account,
        "data": {"message": view.message, **view.data},
    }


def webhook_body(view: NotificationView) -> bytes:
    """The exact bytes that are signed and sent (the same on every retry)."""
    payload = webhook_payload(view)
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


class SignatureError(ValueError):
    """The request was not signed with the secret, or too long ago."""


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> int:
    """Check a `Linkcert-Signature` header against the raw body; return its timestamp.

    Several `v1=` values are accepted, so that a receiver can be handed a new secret before
    the sender switches to it.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("the signature header has no t= or no v1= part")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("the signature is too old (or from the future)")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("the signature does not match the body")
    return timestamp


class WebhookSender:
    """Posts the webhook deliveries of the delivery loop."""

    channel = "webhook"

    def __init__(
        self,
        secret: str | None,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        wall_clock: Callable[[], float] = time.time,
        keys: MasterKeys | None = None,
        allow_private: bool = False,
        ca_bundle: str | None = None,
    ) -> None:
        self._secret = secret
        self._keys = keys
        self._allow_private = allow_private
        # Accounts' endpoints get a client of their own: connections go to checked addresses.
        verify: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            verify = ssl.create_default_context(cafile=ca_bundle)
        self._endpoint_client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, verify=verify
        )
        self.timeout = timeout
        # No redirects: the URL is configured, and a redirect to elsewhere would carry the
        # event (and its signature) to a host nobody chose. No proxies from the environment.
        self.client = client or httpx.AsyncClient(follow_redirects=False, trust_env=False)
        # Signatures carry real time even when the loop's schedule runs on a test clock.
        self.wall_clock = wall_clock

    def __repr__(self) -> str:
        return f"WebhookSender(timeout={self.timeout})"

    async def send(self, job: DeliveryJob, now: datetime) -> Attempt:
        if job.endpoint_id is not None:
            return await self._send_to_endpoint(job)
        if self._secret is None:
            return Attempt.failed("webhook is not configured: set webhook_secret")
        return await self._send(job, self._secret, self.client, job.target, {}, {})

    async def _send_to_endpoint(self, job: DeliveryJob) -> Attempt:
        """An account's endpoint: its own secret, and only to the public address just checked
        (the URL's host stays the TLS name and the Host header)."""
        if job.endpoint_secret is None or self._keys is None:
            return Attempt.failed("the endpoint's secret cannot be read (no master key)")
        secret = self._keys.decrypt(job.endpoint_secret, secret_context(job.endpoint_id or 0))
        try:
            host, port = check_url(job.target)
            addresses = await resolve_async(host, port, allow_private=self._allow_private)
        except EndpointRefused as exc:
            return Attempt.failed(f"refused: {exc}")
        address = addresses[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        parts = urlsplit(job.target)
        pinned = urlunsplit(("https", f"{literal}:{port}", parts.path or "/", parts.query, ""))
        host_header = host if port == 443 else f"{host}:{port}"
        return await self._send(
            job,
            secret.decode(),
            self._endpoint_client,
            pinned,
            {"Host": host_header},
            {"sni_hostname": host},
        )

    async def _send(
        self,
        job: DeliveryJob,
        secret: str,
        client: httpx.AsyncClient,
        url: str,
        extra_headers: dict[str, str],
        extensions: dict[str, str],
    ) -> Attempt:
        body = webhook_body(job.notification)
        headers = {
            **extra_headers,
            "Content-Type": "application/json",
            "User-Agent": f"linkcert/{__version__}",
            SIGNATURE_HEADER: signature_header(secret, int(self.wall_clock()), body),
            "Linkcert-Event-Id": job.notification.public_id,
            "Linkcert-Event-Type": job.notification.kind,
            "Linkcert-Delivery-Attempt": str(job.attempts + 1),
        }
        try:
            # A total limit, not httpx's per-read one: a receiver that trickles bytes must not
            # hold a delivery slot for longer than the timeout either.
            async with asyncio.timeout(self.timeout):
                status, excerpt = await self._post(client, url, body, headers, extensions)
        except TimeoutError:
            return Attempt.failed(f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return Attempt.failed(_describe(exc))
        if 200 <= status < 300:
            return Attempt.ok()
        if 300 <= status < 400:
            return Attempt.failed(f"HTTP {status}: redirects are not followed; configure the URL")
        return Attempt.failed(f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}")

    async def _post(
        self,
        client: httpx.AsyncClient,
        url: str,
        body: bytes,
        headers: dict[str, str],
        extensions: dict[str, str],
    ) -> tuple[int, str]:
        async with client.stream(
            "POST", url, content=body, headers=headers, extensions=extensions
        ) as response:
            received = b""
            async for chunk in response.aiter_raw():
                received += chunk
                if len(received) >= MAX_ERROR_BODY:
                    break
            excerpt = " ".join(received[:MAX_ERROR_BODY].decode("utf-8", "replace").split())
            return response.status_code, excerpt

    async def aclose(self) -> None:
        await self.client.aclose()
        await self._endpoint_client.aclose()


def _describe(exc: httpx.HTTPError) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}"[:500] if detail else type(exc).__name__
