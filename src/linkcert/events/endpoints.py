"""Accounts' webhook endpoints for event batches, and the address rules they must meet.

An endpoint is an `https` URL on a public address. When it is saved, and again each time
linkcert connects to it, the host name is resolved and every address checked: loopback,
private, link-local, shared, multicast, reserved and cloud metadata addresses are refused.
The connection then goes to the address that was checked (the TLS name and Host header stay
the URL's host), so a DNS answer that changes in between (rebinding) cannot send the request
inside the platform's network. Redirects are never followed.

`webhook_allow_private_addresses` lifts the private-address rule for tests and for platforms
whose receivers live on their own network; cloud metadata addresses stay refused even then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update

from linkcert.keys import MasterKeys
from linkcert.store import Account, AccountWebhook, Store, utcnow
from linkcert.store.models import Delivery

MAX_ENDPOINTS_PER_ACCOUNT = 10
MAX_URL_CHARS = 2048
# Instance metadata and platform agent addresses of the large clouds: refused always.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure platform agent
        "192.0.0.192",  # Oracle Cloud
    )
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(ValueError):
    """The URL may not receive events; the message says why and what would do."""


def secret_context(endpoint_id: int) -> str:
    return f"account-webhook:{endpoint_id}"


def check_address(address: Address, *, allow_private: bool) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        raise EndpointRefused(f"{address} is a cloud metadata address")
    if address.is_global:
        return
    if allow_private and (address.is_loopback or address.is_private):
        return
    if address.is_loopback:
        kind = "a loopback"
    elif address.is_link_local:
        kind = "a link-local"
    elif address.is_private:
        kind = "a private"
    else:
        kind = "a non-public"
    raise EndpointRefused(f"{address} is {kind} address; the endpoint must be public")


def check_url(url: str) -> tuple[str, int]:
    """The host and port of an acceptable endpoint URL (before resolving it)."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS or not url.isascii():
        raise EndpointRefused(f"the URL must be ASCII text of at most {MAX_URL_CHARS} characters")
    if any(c <= " " or c == "\x7f" for c in url):
        raise EndpointRefused("the URL contains a space or control character")
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError as exc:
        raise EndpointRefused(f"the URL cannot be parsed: {exc}") from None
    if parts.scheme.lower() != "https":
        raise EndpointRefused("the endpoint must be an https:// URL")
    if "@" in parts.netloc:
        raise EndpointRefused("the URL must not contain credentials (user:password@)")
    if not parts.hostname:
        raise EndpointRefused("the URL has no host")
    return parts.hostname, port


def resolve(host: str, port: int, *, allow_private: bool) -> list[Address]:
    """Every address of `host`, each checked; EndpointRefused if one is not allowed."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found: list[Address] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise EndpointRefused(f"{host} does not resolve ({exc})") from None
        found = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
            if address not in found:
                found.append(address)
    if not found:
        raise EndpointRefused(f"{host} has no address")
    for address in found:
        check_address(address, allow_private=allow_private)
    return found


async def resolve_async(host: str, port: int, *, allow_private: bool) -> list[Address]:
    return await asyncio.to_thread(resolve, host, port, allow_private=allow_private)


@dataclass(frozen=True)
class Endpoint:
    id: int
    account_id: int
    url: str
    created_at: datetime
    secret: str | None = None  # only when just made


def add_endpoint(
    store: Store, keys: MasterKeys, account_id: int, url: str, *, allow_private: bool
) -> Endpoint:
    """Check and save an endpoint; its signing secret is returned this once."""
    host, port = check_url(url)
    resolve(host, port, allow_private=allow_private)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with store.session() as session:
        if session.get(Account, account_id) is None:
            raise LookupError(f"no account {account_id}")
        count = len(
            session.scalars(
                select(AccountWebhook.id).where(AccountWebhook.account_id == account_id)
            ).all()
        )
        if count >= MAX_ENDPOINTS_PER_ACCOUNT:
            raise EndpointRefused(
                f"an account has at most {MAX_ENDPOINTS_PER_ACCOUNT} endpoints; delete one first"
            )
        row = AccountWebhook(
            account_id=account_id, url=url, secret_encrypted=b"", created_at=utcnow()
        )
        session.add(row)
        session.flush()
        row.secret_encrypted = keys.encrypt(secret.encode(), secret_context(row.id))
        return Endpoint(row.id, account_id, url, row.created_at, secret)


def list_endpoints(store: Store, account_id: int) -> list[Endpoint]:
    with store.session() as session:
        rows = session.scalars(
            select(AccountWebhook)
            .where(AccountWebhook.account_id == account_id)
            .order_by(AccountWebhook.id)
        ).all()
        return [Endpoint(r.id, r.account_id, r.url, r.created_at) for r in rows]


def delete_endpoint(store: Store, account_id: int, endpoint_id: int) -> bool:
    with store.session() as session:
        row = session.get(AccountWebhook, endpoint_id)
        if row is None or row.account_id != account_id:
            return False
        # Batches still owed to it go nowhere now: never to the URL without its secret.
        session.execute(
            update(Delivery)
            .where(Delivery.endpoint_id == endpoint_id, Delivery.status == "pending")
            .values(status="failed", last_error="the endpoint was deleted", next_attempt_at=None)
        )
        session.execute(
            update(Delivery).where(Delivery.endpoint_id == endpoint_id).values(endpoint_id=None)
        )
        session.delete(row)
        return True
