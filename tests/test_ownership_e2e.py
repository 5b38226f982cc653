"""Who gets a name, and when links on it stop: real DNS on loopback, Pebble, linkcert's edge.

Saving a name is a claim; only the account whose own record DNS shows gets the certificate,
and links are answered only on names the edge serves, in their current epoch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from linkcert.domains import (
    NotProven,
    create_account,
    delete_domain,
    domain_status,
    domain_status_for,
    find_account,
    set_tracking_domain,
)
from linkcert.links import create_link
from linkcert.names import NamePolicy
from linkcert.ownership_store import live_claims
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Certificate, Domain, Store, utcnow
from linkcert.testbed.waiting import wait_for_async as wait_for
from tests.e2e_support import Platform, https_get, start_platform, wait_until_secured

pytestmark = [pytest.mark.pebble]

POLICY = NamePolicy(allow_test_domains=True)
ROLES = Roles(api=False)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    world = start_platform(tmp_path_factory.mktemp("pebble"))
    yield world
    world.pebble.stop()
    world.dns.stop()


async def start(platform: Platform, tmp_path: Path) -> tuple[Runtime, Store]:
    db_url = f"sqlite:///{tmp_path}/linkcert.sqlite3"
    store = Store(db_url)
    runtime = Runtime(platform.settings(db_url, tmp_path), ROLES, store=store)
    await runtime.start()
    return runtime, store


async def http_get(port: int, host: str, path: str) -> tuple[int, str | None]:
    """One plain HTTP GET to the edge; the status and the Location header."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    location = next(
        (line.split(":", 1)[1].strip() for line in head if line.lower().startswith("location:")),
        None,
    )
    return int(head[0].split()[1]), location


def path_of(url: str, domain: str) -> str:
    return url.split(domain, 1)[1]


def certificates_of(store: Store, name: str) -> list[Certificate]:
    with store.session() as session:
        return list(
            session.scalars(
                select(Certificate)
                .join(Domain, Domain.id == Certificate.domain_id)
                .where(Domain.name == name)
                .order_by(Certificate.id)
            )
        )


def account_id(store: Store, name: str) -> int:
    with store.session() as session:
        return find_account(session, name).id


def label_of(store: Store, name: str) -> str:
    with store.session() as session:
        return find_account(session, name).dns_label


async def test_two_accounts_race_for_a_name_and_only_the_one_dns_names_gets_it(
    platform: Platform, tmp_path: Path
) -> None:
    runtime, store = await start(platform, tmp_path)
    name = "links.raced.test"
    try:
        create_account(store, "squatter")
        create_account(store, "raced")
        # Both save the name; the squatter first. DNS names the real owner's account.
        set_tracking_domain(store, "squatter", name, POLICY)
        set_tracking_domain(store, "raced", name, POLICY)
        platform.point(name, store, "raced")
        runtime.wake()
        await wait_until_secured(store, name)
        assert domain_status(store, name).account == "raced"
        lost = domain_status_for(store, name, account_id(store, "squatter"))
        assert lost.dns_state == "claimed_elsewhere" and lost.cert_state == "none"
        assert lost.issuer is None and lost.not_after is None  # nothing of the owner's shows
        assert "names another account" in lost.problems[0]["message"]
        # One certificate, for the proven account; the squatter can make no links on it.
        assert len(certificates_of(store, name)) == 1
        with pytest.raises(NotProven):
            create_link(
                store,
                runtime.tracking_key,
                name,
                "https://evil.example/",
                account_id=account_id(store, "squatter"),
            )
        create_link(
            store,
            runtime.tracking_key,
            name,
            "https://raced.example/",
            account_id=account_id(store, "raced"),
        )
    finally:
        await runtime.aclose()
    store.close()


async def test_a_name_on_the_shared_target_is_never_secured_for_a_claim(
    platform: Platform, tmp_path: Path
) -> None:
    runtime, store = await start(platform, tmp_path)
    name = "links.unnamed.test"
    platform.point(name)  # the platform's shared target: proves no account
    try:
        create_account(store, "unnamed")
        set_tracking_domain(store, "unnamed", name, POLICY)
        runtime.wake()
        viewer = account_id(store, "unnamed")
        await wait_for(lambda: domain_status_for(store, name, viewer).dns_state == "not_proven")
        status = domain_status_for(store, name, viewer)
        assert status.problems[0]["code"] == "ownership_not_proven"
        label = label_of(store, "unnamed")
        assert f"{name}. CNAME {label}.edge.platform.test." in status.problems[0]["fix"]
        assert certificates_of(store, name) == []
        with pytest.raises(NotProven):
            create_link(store, runtime.tracking_key, name, "https://x.example/")
        # The TXT record names the account: that alone proves it.
        platform.dns.add(f"_linkcert.{name}", "TXT", f'"linkcert={label}"')
        await wait_until_secured(store, name, timeout=90)
        assert domain_status(store, name).account == "unnamed"
    finally:
        await runtime.aclose()
    store.close()


async def test_a_squatters_links_are_never_answered_once_the_owner_proves_the_name(
    platform: Platform, tmp_path: Path
) -> None:
    runtime, store = await start(platform, tmp_path)
    name = "links.brand-owner.test"
    root = platform.pebble.root_pem()
    try:
        # Before the upgrade, the squatter took the name (first saved it) and had it secured
        # under the shared target: the upgrade marks such names `legacy`, still the squatter's.
        squatter = create_account(store, "first-saver").id
        set_tracking_domain(store, "first-saver", name, POLICY)
        platform.point(name)
        with store.session() as session:
            domain = session.scalars(select(Domain).where(Domain.name == name)).one()
            for claim in live_claims(session, domain, utcnow()):
                session.delete(claim)
            domain.account_id, domain.proof = squatter, "legacy"
        runtime.wake()
        await wait_until_secured(store, name)
        # Proven by the upgrade: the status does not also say "not yet proven to be yours".
        legacy_problems = [p["code"] for p in domain_status(store, name).problems]
        assert "ownership_not_proven" not in legacy_problems
        await wait_for(lambda: name in runtime.cache)
        squatters = create_link(store, runtime.tracking_key, name, "https://evil.example/")
        assert runtime.edge is not None and runtime.edge.http_port and runtime.edge.https_port
        http, https = runtime.edge.http_port, runtime.edge.https_port
        assert await http_get(http, name, path_of(squatters.url, name)) == (
            302,
            "https://evil.example/",
        )

        # The brand points the name at its own account's target and saves it there.
        create_account(store, "brand-owner")
        set_tracking_domain(store, "brand-owner", name, POLICY)
        platform.point(name, store, "brand-owner")
        runtime.wake()
        await wait_for(lambda: domain_status(store, name).account == "brand-owner")
        await wait_until_secured(store, name)
        await wait_for(lambda: name in runtime.cache and runtime.cache.link_epoch(name) == 1)
        owners = create_link(store, runtime.tracking_key, name, "https://brand.example/")

        # The squatter's links are answered nowhere, on HTTP or HTTPS; the owner's are.
        squatter_path = path_of(squatters.url, name)
        assert (await http_get(http, name, squatter_path))[0] == 404
        assert (await http_get(http, name, squatter_path.replace("/c/", "/o/")))[0] == 404
        status, headers, _ = await asyncio.to_thread(https_get, https, name, squatter_path, root)
        assert status == 404 and "location" not in headers
        status, headers, _ = await asyncio.to_thread(
            https_get, https, name, path_of(owners.url, name), root
        )
        assert (status, headers["location"]) == (302, "https://brand.example/")
        assert runtime.edge.counters.invalid_tokens >= 3
    finally:
        await runtime.aclose()
    store.close()


async def test_http_links_of_a_deleted_name_are_refused(platform: Platform, tmp_path: Path) -> None:
    runtime, store = await start(platform, tmp_path)
    name = "links.deleted-http.test"
    try:
        create_account(store, "deleted-http")
        set_tracking_domain(store, "deleted-http", name, POLICY)
        platform.point(name, store, "deleted-http")
        runtime.wake()
        await wait_until_secured(store, name)
        await wait_for(lambda: name in runtime.cache)
        link = create_link(store, runtime.tracking_key, name, "https://gone.example/")
        assert runtime.edge is not None and runtime.edge.http_port
        port, path = runtime.edge.http_port, path_of(link.url, name)
        assert await http_get(port, name, path) == (302, "https://gone.example/")
        delete_domain(store, name)
        runtime.wake()
        await wait_for(lambda: domain_status(store, name).cert_state == "revoked")
        await wait_for(lambda: name not in runtime.cache, timeout=10)
        assert (await http_get(port, name, path))[0] == 404
        assert (await http_get(port, name, path.replace("/c/", "/o/")))[0] == 404
    finally:
        await runtime.aclose()
    store.close()


async def test_a_second_delete_after_saving_again_revokes_the_new_certificate(
    platform: Platform, tmp_path: Path
) -> None:
    runtime, store = await start(platform, tmp_path)
    name = "links.twice.test"
    try:
        create_account(store, "twice")
        platform.point(name, store, "twice")
        set_tracking_domain(store, "twice", name, POLICY)
        runtime.wake()
        await wait_until_secured(store, name)
        delete_domain(store, name)
        runtime.wake()
        await wait_for(lambda: domain_status(store, name).cert_state == "revoked")
        assert domain_status(store, name).account is None

        # Saved again: a new claim, proven again by DNS, secured with a new certificate.
        set_tracking_domain(store, "twice", name, POLICY)
        runtime.wake()
        await wait_until_secured(store, name)
        first, second = certificates_of(store, name)
        assert second.revoked_at is None and second.key_encrypted is not None

        delete_domain(store, name)
        runtime.wake()
        await wait_for(lambda: domain_status(store, name).cert_state == "revoked")
        # And once more with nothing left to revoke: still complete, nothing breaks.
        delete_domain(store, name)
        runtime.wake()
        await wait_for(lambda: domain_status(store, name).next_attempt_at is None)
    finally:
        await runtime.aclose()
    for cert in (first, second):
        assert platform.pebble.cert_status(cert.serial).revoked, cert.serial
    with store.session() as session:
        assert all(c.key_encrypted is None for c in session.scalars(select(Certificate)))
    store.close()
