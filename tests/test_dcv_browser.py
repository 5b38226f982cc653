"""The account page of a customer secured before the switch: the delegation record first, then
the CNAME; the certificate in place while the name still points elsewhere. Real Chromium,
Knot, Pebble and linkcert on loopback; its screenshot is docs/screenshots/account-secured-in-
advance.png (refreshed by docs/screenshots/make.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from linkcert.auth import create_token
from linkcert.domains import create_account, find_account
from linkcert.ownership import dcv_label
from linkcert.service.runtime import Runtime
from linkcert.store import Store
from tests.browser_support import chromium, low_contrast, new_page, screenshot
from tests.dcv_support import DCV_ZONE, EDGE_TARGET, ELSEWHERE, DcvWorld, start_dcv_world

pytestmark = [pytest.mark.browser, pytest.mark.pebble, pytest.mark.knot]

SECURED_TIMEOUT = 60_000  # ms


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DcvWorld]:
    started = start_dcv_world(tmp_path_factory.mktemp("dcv-browser"))
    yield started
    started.stop()


async def test_the_page_shows_the_delegation_first_and_a_domain_secured_in_advance(
    world: DcvWorld, tmp_path: Path
) -> None:
    domain = "links.customer.test"
    db_url = f"sqlite:///{tmp_path / 'linkcert.sqlite3'}"
    store = Store(db_url)
    store.migrate()
    runtime = Runtime(world.settings(db_url, tmp_path), store=store)
    await runtime.start()
    try:
        shop = create_account(store, "early-shop", ["owner@early-shop.test"])
        token, _ = create_token(store, shop.id, "account page")
        with store.session() as session:
            account = find_account(session, shop.id)
            own_target = f"{account.dns_label}.{EDGE_TARGET}"
            delegation = f"{dcv_label(account.dcv_secret, domain)}.{DCV_ZONE}"
        # Traffic still goes to the old tracker.
        world.knot.replace(domain, "CNAME", ELSEWHERE + ".")
        url = f"http://127.0.0.1:{runtime.api_port}"
        async with chromium() as browser, new_page(browser) as page:
            await page.goto(url + "/login")
            await page.get_by_label("API token").fill(token)
            await page.get_by_role("button", name="LOG IN").click()
            await page.get_by_label("Link tracking domain", exact=True).fill(domain)
            records = page.locator("#dns-records")
            await expect(records).to_contain_text(f"_acme-challenge.{domain}. CNAME {delegation}.")
            # The customer adds the delegation only, and saves.
            world.knot.replace(f"_acme-challenge.{domain}", "CNAME", delegation + ".")
            await page.get_by_role("button", name="SAVE CHANGES").click()
            await expect(page.locator("#notice")).to_contain_text("Saved.")
            certificate = page.locator('[data-state="certificate"]')
            await expect(certificate).to_have_text("Secured", timeout=SECURED_TIMEOUT)
            panel = page.locator("#status-panel")
            await expect(panel).to_contain_text("Secured in advance: switch your CNAME when ready")
            await expect(panel).to_contain_text("DNS-01, through the delegation")
            await page.reload()
            text = " ".join((await records.inner_text()).split())
            first = text.index(f"_acme-challenge.{domain}. CNAME {delegation}.")
            then = text.index(f"{domain}. CNAME {own_target}.")
            assert first < then  # the delegation first, then the CNAME
            assert "add this record first" in text
            assert await low_contrast(page) == []
            await screenshot(page, "account-secured-in-advance")
    finally:
        await runtime.aclose()
