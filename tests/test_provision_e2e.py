"""End to end: a saved domain is secured by a real ACME CA and serves tracked links over HTTPS.

Pebble (Debian's ACME test server) validates over HTTP-01 against linkcert's own edge and
resolves names through a real DNS server on loopback. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from linkcert.config import ConfigError
from linkcert.domains import create_account, domain_status, set_tracking_domain
from linkcert.keys import generate_master_key
from linkcert.links import create_link
from linkcert.names import NamePolicy
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import LinkEvent, Order, Store
from linkcert.testbed.waiting import wait_for_async
from tests.e2e_support import (
    Platform,
    https_get,
    start_platform,
    wait_until_secured,
)
from tests.notify_support import SECRET as WEBHOOK_SECRET
from tests.notify_support import SmtpReceiver, WebhookReceiver

POLICY = NamePolicy(allow_test_domains=True)
ROLES = Roles(api=False)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    world = start_platform(tmp_path_factory.mktemp("pebble"))
    yield world
    world.pebble.stop()
    world.dns.stop()


async def test_saved_domain_is_secured_and_serves_tracked_links(
    platform: Platform, db_url: str, tmp_path: Path
) -> None:
    settings = platform.settings(db_url, tmp_path)
    store = Store(db_url)
    store.migrate()
    runtime = Runtime(settings, ROLES, store=store)
    await runtime.start()
    domain = f"links.{tmp_path.name.replace('_', '-')[-20:]}.shop.test".lower()
    try:
        create_account(store, "shop", ["ops@shop.test"])
        platform.point(domain, store, "shop")
        set_tracking_domain(store, "shop", domain, POLICY)
        runtime.wake()
        await wait_until_secured(store, domain)
        await wait_for_async(lambda: domain in runtime.cache)
        link = create_link(store, runtime.tracking_key, domain, "https://shop.example.com/sale")
        assert runtime.edge is not None and runtime.edge.https_port
        port = runtime.edge.https_port
        root = platform.pebble.root_pem()
        path = link.url.split(domain, 1)[1]

        status, headers, peer = await asyncio.to_thread(https_get, port, domain, path, root)
        assert status == 302
        assert headers["location"] == "https://shop.example.com/sale"
        assert ("DNS", domain) in peer["subjectAltName"]

        forged = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
        status, headers, _ = await asyncio.to_thread(https_get, port, domain, forged, root)
        assert status == 404 and "location" not in headers

        # A name the edge holds no certificate for fails the handshake; it never gets ours.
        with pytest.raises(ssl.SSLError):
            await asyncio.to_thread(https_get, port, "other.shop.test", "/", root)

        state = domain_status(store, domain)
        assert state.dns_state == "ok" and state.not_after is not None
    finally:
        await runtime.aclose()
    # The click was flushed on the clean stop.
    check = Store(db_url)
    with check.session() as session:
        assert session.scalar(select(func.count()).select_from(LinkEvent)) == 1
    # A different master key cannot open what was stored: a clear start-up error.
    wrong = platform.settings(db_url, tmp_path, master_key=generate_master_key("other"))
    with pytest.raises(ConfigError, match="master key"):
        await Runtime(wrong, ROLES, store=check).start()
    check.close()


def test_missing_master_key_is_a_start_up_error(platform: Platform, tmp_path: Path) -> None:
    settings = platform.settings(f"sqlite:///{tmp_path}/x.db", tmp_path, master_key=None)
    with pytest.raises(ConfigError, match="LINKCERT_MASTER_KEY"):
        Runtime(settings, ROLES)


async def test_dns_fixed_later_is_secured_without_any_action(
    platform: Platform, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path}/linkcert.sqlite3"
    store = Store(db_url)
    runtime = Runtime(platform.settings(db_url, tmp_path), ROLES, store=store)
    await runtime.start()
    domain = "links.later.test"
    try:
        create_account(store, "later")
        set_tracking_domain(store, "later", domain, POLICY)
        runtime.wake()
        await wait_for_async(lambda: domain_status(store, domain).dns_state == "points_elsewhere")
        status = domain_status(store, domain)
        assert status.cert_state == "none"
        assert status.problems and status.problems[0]["fix"]
        platform.point(domain, store, "later")  # the customer fixes DNS; nobody presses anything
        await wait_until_secured(store, domain, timeout=60)
    finally:
        await runtime.aclose()
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 1
    store.close()


async def test_unknown_profile_is_a_clear_error(platform: Platform, tmp_path: Path) -> None:
    # The packaged Pebble lists no profiles, so any profile is unknown to it.
    db_url = f"sqlite:///{tmp_path}/linkcert.sqlite3"
    store = Store(db_url)
    settings = platform.settings(db_url, tmp_path, acme_profile="shortlived")
    runtime = Runtime(settings, ROLES, store=store)
    await runtime.start()
    domain = "links.profiled.test"
    try:
        create_account(store, "profiled")
        platform.point(domain, store, "profiled")
        set_tracking_domain(store, "profiled", domain, POLICY)
        runtime.wake()
        await wait_for_async(lambda: domain_status(store, domain).cert_state == "failed")
        problem = domain_status(store, domain).problems[0]
        assert "shortlived" in problem["message"] and "LINKCERT_ACME_PROFILE" in problem["message"]
    finally:
        await runtime.aclose()
    store.close()


async def test_secured_is_told_by_email_and_signed_webhook(
    platform: Platform, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path}/linkcert.sqlite3"
    store = Store(db_url)
    with SmtpReceiver() as smtp, WebhookReceiver() as hooks:
        settings = platform.settings(
            db_url,
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_starttls=False,
            smtp_from="linkcert <alerts@platform.test>",
            webhook_urls=(hooks.url,),
            webhook_secret=WEBHOOK_SECRET,
        )
        runtime = Runtime(settings, ROLES, store=store)
        await runtime.start()
        domain = "links.told.test"
        try:
            create_account(store, "told", ["owner@told.test"])
            platform.point(domain, store, "told")
            set_tracking_domain(store, "told", domain, POLICY)
            runtime.wake()
            await wait_until_secured(store, domain)
            await wait_for_async(lambda: bool(smtp.mails) and bool(hooks.requests), timeout=30)
        finally:
            await runtime.aclose()
    mail = smtp.mails[0]
    assert mail.recipients == ["owner@told.test"]
    assert domain in mail.body
    hook = hooks.requests[0]
    event = json.loads(hook.body)
    assert hook.verified and event["type"] == "secured"
    assert domain in json.dumps(event["domain"])
    store.close()
