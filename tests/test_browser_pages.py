"""The pages in a real browser (Debian's Chromium) against the whole product on loopback.

Each test runs linkcert (worker, edge and API) against Pebble and a real DNS server, opens the
API's URL in Chromium and uses the pages as a person would: typing, tabbing, clicking, waiting
for the status to change by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect

from linkcert.auth import create_token
from linkcert.brand import request_brand_domain
from linkcert.domains import create_account, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.service.runtime import Runtime
from linkcert.store import Store
from linkcert.testbed.waiting import wait_for_async
from tests.browser_support import (
    chromium,
    has_horizontal_scroll,
    low_contrast,
    new_page,
    require_chromium,
    screenshot,
)
from tests.certs_support import ThrowawayCA, pem
from tests.e2e_support import (
    EDGE_TARGET,
    Platform,
    https_get,
    start_platform,
)
from tests.ownership_support import account_target

pytestmark = [pytest.mark.browser, pytest.mark.pebble]

POLICY = NamePolicy(allow_test_domains=True)
SECURED_TIMEOUT = 60_000  # ms: Pebble issues in about a second; leave room for a busy machine
DELIVERABILITY = "deliverability@platform.test"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    require_chromium()
    world = start_platform(tmp_path_factory.mktemp("pebble"))
    yield world
    world.pebble.stop()
    world.dns.stop()


@dataclass
class Running:
    runtime: Runtime
    store: Store
    url: str
    account_token: str
    operator_token: str
    account_id: int


@asynccontextmanager
async def linkcert(
    platform: Platform, tmp_path: Path, account: str, **settings: Any
) -> AsyncIterator[Running]:
    """The whole product, its API (and so the pages) on a free loopback port."""
    db_url = f"sqlite:///{tmp_path / 'linkcert.sqlite3'}"
    store = Store(db_url)
    store.migrate()
    runtime = Runtime(platform.settings(db_url, tmp_path, **settings), store=store)
    await runtime.start()
    try:
        shop = create_account(store, account, [f"owner@{account}.test", f"it@{account}.test"])
        account_token, _ = create_token(store, shop.id, "account page")
        operator_token, _ = create_token(store, None, "deliverability team")
        yield Running(
            runtime,
            store,
            f"http://127.0.0.1:{runtime.api_port}",
            account_token,
            operator_token,
            shop.id,
        )
    finally:
        await runtime.aclose()


async def log_in(page: Page, running: Running, token: str) -> None:
    await page.goto(running.url + "/login")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="LOG IN").click()


async def test_a_customer_saves_a_domain_and_watches_it_get_secured(
    platform: Platform, tmp_path: Path
) -> None:
    domain = "links.shop-one.test"
    async with (
        linkcert(platform, tmp_path, "shop-one", deliverability_email=DELIVERABILITY) as running,
        chromium() as browser,
        new_page(browser) as page,
    ):
        await page.goto(running.url + "/login")
        await screenshot(page, "login")
        await log_in(page, running, running.account_token)
        await expect(page.get_by_role("heading", name="Account Details")).to_be_visible()
        await expect(page.get_by_text("owner@shop-one.test")).to_be_visible()

        # Typing the name shows the record to create at once, then what DNS says now.
        await page.get_by_label("Link tracking domain", exact=True).fill(domain)
        records = page.locator("#dns-records")
        own_target = account_target(running.store, running.account_id, EDGE_TARGET)
        await expect(records).to_contain_text(f"{domain}. CNAME {own_target}.")
        await expect(page.locator("#dns-check")).to_contain_text(
            "The domain does not point to us yet"
        )
        await expect(records).to_contain_text("Not in place yet")
        await screenshot(page, "account-dns-instructions")

        # The customer creates the record, then saves; the page follows by itself.
        platform.point(domain, running.store, running.account_id)
        await page.get_by_role("button", name="SAVE CHANGES").click()
        await expect(page.locator("#notice")).to_contain_text("Saved.")
        # Without a reload, the records read as after one: either record proves the name.
        await expect(page.locator("#dns-help-heading")).to_have_text("Your DNS records")
        await expect(records).to_contain_text("Add one of these two records")
        await expect(records).to_contain_text(f"{domain}. CNAME {own_target}.")
        await expect(records).to_contain_text(f'_linkcert.{domain}. TXT "linkcert=')
        await expect(records).to_contain_text("Or the TXT record")
        await expect(records).not_to_contain_text("Not in place yet")
        after_save = " ".join((await records.inner_text()).split())
        certificate = page.locator('[data-state="certificate"]')
        await expect(certificate).to_have_text("Secured", timeout=SECURED_TIMEOUT)
        await expect(page.locator('[data-state="dns"]')).to_have_text("DNS is set up correctly")
        panel = page.locator("#status-panel")
        await expect(panel).to_contain_text("HTTPS is on")
        await expect(panel).to_contain_text("Issued by")
        await expect(panel).to_contain_text("Pebble")
        await expect(panel).to_contain_text("Expires")
        await expect(panel).to_contain_text("Next renewal")
        # Screen readers were told, once, in words.
        await expect(page.locator("#status-live")).to_contain_text("Certificate: Secured.")
        assert await low_contrast(page) == []
        await page.locator("details.history summary").click()
        await screenshot(page, "account-secured")

        await page.reload()
        assert " ".join((await records.inner_text()).split()) == after_save


# The product's help page, word for word: "Click your user name in the top-right corner of the
# application and, from the drop-down menu, select Account Details. On the Account Details page,
# select the ACCOUNT tab. In the Account Information section, enter the domain in the Link
# tracking domain field (add the CNAME first). Click SAVE CHANGES." The two tests below do
# exactly that, by role and label, once with the mouse and once with the keyboard alone.


async def test_the_help_page_followed_with_the_mouse(platform: Platform, tmp_path: Path) -> None:
    domain = "links.help-shop.test"
    async with (
        linkcert(platform, tmp_path, "help-shop", deliverability_email=DELIVERABILITY) as running,
        chromium() as browser,
        new_page(browser) as page,
    ):
        platform.point(domain, running.store, running.account_id)  # "adding the CNAME first"
        own_target = account_target(running.store, running.account_id, EDGE_TARGET)
        await log_in(page, running, running.account_token)

        # The user name at the top right is a disclosure button.
        user = page.get_by_role("banner").get_by_role("button", name="help-shop")
        await expect(user).to_have_attribute("aria-expanded", "false")
        menu = page.locator(f"#{await user.get_attribute('aria-controls')}")
        await expect(menu).to_be_hidden()
        await user.click()
        await expect(user).to_have_attribute("aria-expanded", "true")
        await expect(menu.get_by_role("link", name="Account Details")).to_be_visible()
        await expect(menu.get_by_role("button", name="Log out")).to_be_visible()
        await screenshot(page, "account-menu")
        # A click anywhere else closes it.
        await page.get_by_role("heading", name="Account Details").click()
        await expect(user).to_have_attribute("aria-expanded", "false")
        await expect(menu).to_be_hidden()

        await user.click()
        async with page.expect_navigation(url=running.url + "/account"):
            await menu.get_by_role("link", name="Account Details").click()
        await expect(page.get_by_role("heading", name="Account Details")).to_be_visible()
        await page.evaluate("window.sameDocument = true")  # gone if the page reloads

        tab = page.get_by_role("tab", name="ACCOUNT")
        await expect(tab).to_have_attribute("aria-selected", "true")
        await tab.click()
        await expect(tab).to_have_attribute("aria-selected", "true")
        panel = page.get_by_role("tabpanel", name="ACCOUNT")
        info = panel.get_by_role("region", name="Account Information")
        await expect(info).to_contain_text("owner@help-shop.test")

        await info.get_by_label("Link tracking domain", exact=True).fill(domain)
        await expect(info).to_contain_text(f"{domain}. CNAME {own_target}.")
        await expect(info).to_contain_text("✓ In place")
        await info.get_by_role("button", name="SAVE CHANGES").click()

        status = panel.get_by_role("region", name="HTTPS status")
        await expect(status).to_contain_text(
            "HTTPS is on: your tracked links are secured.", timeout=SECURED_TIMEOUT
        )
        assert await page.evaluate("window.sameDocument === true")
        # The status is the section right under Account Information.
        assert await info.evaluate("s => s.nextElementSibling.id") == "status-card"

        # For customers who prefer to write: the deliverability team's address.
        brand = panel.get_by_role("region", name="Brand link tracking domains")
        mail = brand.get_by_role("link", name=DELIVERABILITY)
        assert (await mail.get_attribute("href") or "").startswith(f"mailto:{DELIVERABILITY}?")
        assert await low_contrast(page) == []


async def test_the_help_page_followed_with_the_keyboard_alone(
    platform: Platform, tmp_path: Path
) -> None:
    domain = "links.typist-shop.test"
    async with (
        linkcert(platform, tmp_path, "typist-shop") as running,
        chromium() as browser,
        new_page(browser) as page,
    ):
        platform.point(domain, running.store, running.account_id)
        await page.goto(running.url + "/login")
        await tab_until(page, page.get_by_label("API token"))
        await page.keyboard.type(running.account_token)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Account Details")).to_be_visible()

        user = page.get_by_role("banner").get_by_role("button", name="typist-shop")
        details = page.get_by_role("link", name="Account Details")
        await tab_until(page, user)
        assert await focus_is_visible(page)
        await page.keyboard.press("Enter")
        await expect(user).to_have_attribute("aria-expanded", "true")
        # Escape closes the menu and gives the focus back to the button.
        await page.keyboard.press("Escape")
        await expect(user).to_have_attribute("aria-expanded", "false")
        await expect(user).to_be_focused()
        await expect(details).to_be_hidden()
        # Space opens it too; the arrow keys move between its items; tabbing out closes it.
        await page.keyboard.press("Space")
        await expect(user).to_have_attribute("aria-expanded", "true")
        await page.keyboard.press("ArrowDown")
        await expect(details).to_be_focused()
        await page.keyboard.press("ArrowDown")
        await expect(page.get_by_role("button", name="Log out")).to_be_focused()
        await page.keyboard.press("ArrowUp")
        await expect(details).to_be_focused()
        await page.keyboard.press("End")
        await expect(page.get_by_role("button", name="Log out")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(user).to_have_attribute("aria-expanded", "false")
        await expect(page.get_by_role("tab", name="ACCOUNT")).to_be_focused()
        # Back to the button: Enter opens the menu, Tab reaches its first item.
        await page.keyboard.press("Shift+Tab")
        await expect(user).to_be_focused()
        await page.keyboard.press("Enter")
        await page.keyboard.press("Tab")
        await expect(details).to_be_focused()
        assert await focus_is_visible(page)
        async with page.expect_navigation(url=running.url + "/account"):
            await page.keyboard.press("Enter")
        await page.evaluate("window.sameDocument = true")

        tab = page.get_by_role("tab", name="ACCOUNT")
        await tab_until(page, tab)
        assert await focus_is_visible(page)
        await page.keyboard.press("Space")
        await expect(tab).to_have_attribute("aria-selected", "true")
        info = page.get_by_role("tabpanel", name="ACCOUNT").get_by_role(
            "region", name="Account Information"
        )
        field = info.get_by_label("Link tracking domain", exact=True)
        await tab_until(page, field)
        await page.keyboard.type(domain)
        await expect(info).to_contain_text("✓ In place")
        await tab_until(page, info.get_by_role("button", name="SAVE CHANGES"))
        assert await focus_is_visible(page)
        await page.keyboard.press("Enter")

        status = page.get_by_role("region", name="HTTPS status")
        await expect(status).to_contain_text(
            "HTTPS is on: your tracked links are secured.", timeout=SECURED_TIMEOUT
        )
        assert await page.evaluate("window.sameDocument === true")
        # Screen readers heard it in words.
        await expect(page.locator("#status-live")).to_contain_text("Certificate: Secured.")


async def test_without_scripts_the_user_name_menu_is_plain_links(
    platform: Platform, tmp_path: Path
) -> None:
    async with (
        linkcert(platform, tmp_path, "plain-shop") as running,
        chromium() as browser,
        new_page(browser, javascript=False) as page,
    ):
        await log_in(page, running, running.account_token)
        banner = page.get_by_role("banner")
        await expect(banner.get_by_role("button", name="plain-shop")).to_be_hidden()
        await expect(banner.get_by_role("link", name="Account Details")).to_be_visible()
        await banner.get_by_role("button", name="Log out").click()
        await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def test_a_customer_whose_caa_forbids_lets_encrypt_sees_the_record_to_add(
    platform: Platform, tmp_path: Path
) -> None:
    domain = "links.caa-shop.test"
    platform.dns.add("caa-shop.test", "CAA", '0 issue "digicert.com"')
    wanted = 'caa-shop.test. CAA 0 issue "letsencrypt.org"'
    async with (
        linkcert(platform, tmp_path, "caa-shop") as running,
        chromium() as browser,
        new_page(browser) as page,
    ):
        platform.point(domain, running.store, running.account_id)
        await log_in(page, running, running.account_token)
        await page.get_by_label("Link tracking domain", exact=True).fill(domain)
        records = page.locator("#dns-records")
        await expect(records).to_contain_text(wanted)
        await expect(records).to_contain_text("✓ In place")  # the CNAME is right
        await expect(page.locator("#dns-check")).to_contain_text("CAA record")
        await expect(page.locator("#dns-problems")).to_contain_text("digicert.com")
        await screenshot(page, "account-caa-before-saving")

        await page.get_by_role("button", name="SAVE CHANGES").click()
        dns = page.locator('[data-state="dns"]')
        await expect(dns).to_have_text(
            "A CAA record does not allow our certificate authority", timeout=SECURED_TIMEOUT
        )
        problem = page.locator('#status-panel .problem[data-code="caa_not_authorized"]')
        await expect(problem).to_contain_text(wanted)
        await expect(page.locator('[data-state="certificate"]')).to_have_text("No certificate yet")
        await screenshot(page, "account-caa-status")


async def test_an_operator_provisions_a_brand_domain_by_upload(
    platform: Platform, tmp_path: Path
) -> None:
    domain = "links.brand-shop.test"
    platform.point(domain)
    ca = ThrowawayCA.create("Brand Trust")
    leaf = ca.issue(domain)
    chain_file, key_file = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain_file.write_bytes(leaf.chain_pem)
    key_file.write_bytes(leaf.key_pem)
    bundle = tmp_path / "brand-roots.pem"  # the brand's private CA, trusted for uploads
    bundle.write_bytes(pem(ca.root))
    async with (
        linkcert(platform, tmp_path, "brand-shop", upload_ca_bundle=bundle) as running,
        chromium() as browser,
    ):
        request = request_brand_domain(
            running.store, running.account_id, domain, "Our CA is Brand Trust", POLICY
        )
        set_tracking_domain(running.store, running.account_id, "links.other-shop.test", POLICY)
        async with new_page(browser) as page:
            await log_in(page, running, running.operator_token)
            await expect(page.get_by_role("heading", name="Deliverability console")).to_be_visible()
            item = page.locator("article.request", has_text=domain)
            await expect(item).to_contain_text("Our CA is Brand Trust")
            await item.get_by_text("Upload a certificate instead").click()
            await item.get_by_label("Certificate chain (PEM file)").set_input_files(chain_file)
            await item.get_by_label("Private key (PEM file)").set_input_files(key_file)
            await screenshot(page, "console-upload")
            await item.get_by_role("button", name="Upload and serve").click()
            await expect(page.get_by_role("status")).to_contain_text(
                f"Request {request.id}: {domain} now serves the uploaded certificate"
            )
            await screenshot(page, "console")

            await page.get_by_role("link", name="domain status").click()
            certificate = page.locator('[data-state="certificate"]')
            await expect(certificate).to_have_text("Secured")
            panel = page.locator("#status-panel")
            await expect(panel).to_contain_text(
                "Brand Trust Issuing (uploaded certificate, private CA: not publicly trusted)"
            )
            await expect(page.locator('[data-state="dns"]')).to_have_text(
                "DNS is set up correctly", timeout=SECURED_TIMEOUT
            )
            # Approved by the team: nothing says the name is "not yet proven" to be the brand's.
            not_proven = panel.locator('.problem[data-code="ownership_not_proven"]')
            await expect(not_proven).to_have_count(0)
            await screenshot(page, "console-domain")

        # The edge serves the uploaded certificate to clients that trust the brand's CA.
        await wait_for_async(lambda: domain in running.runtime.cache)
        edge = running.runtime.edge
        assert edge is not None and edge.https_port
        root = pem(ca.root).decode()
        _, _, peer = await asyncio.to_thread(https_get, edge.https_port, domain, "/", root)
        assert ("DNS", domain) in peer["subjectAltName"]


async def test_keyboard_only_and_a_phone_sized_screen(platform: Platform, tmp_path: Path) -> None:
    async with linkcert(platform, tmp_path, "keys-shop") as running, chromium() as browser:
        async with new_page(browser) as page:
            await page.goto(running.url + "/login")
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.className") == "skip-link"
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.id") == "token"
            await page.keyboard.type(running.account_token)
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("heading", name="Account Details")).to_be_visible()

            reached = await tab_to(page, "domain")
            # The skip link, the user-name menu and the ACCOUNT tab come first, in reading order.
            assert reached[:3] == ["Skip to main content", "keys-shop", "ACCOUNT"], reached
            assert await focus_is_visible(page)
            await page.keyboard.type("links.keys-shop.test")
            await expect(page.locator("#dns-records")).to_contain_text("links.keys-shop.test.")
            await tab_to(page, "save")
            assert await focus_is_visible(page)
            await page.keyboard.press("Enter")
            await expect(page.locator("#notice")).to_contain_text("Saved.")
            await expect(page.locator("#status-card")).to_be_visible()

        async with new_page(browser, phone=True) as phone:
            await log_in(phone, running, running.account_token)
            await phone.get_by_label("Link tracking domain", exact=True).fill(
                "links.a-rather-long-name.keys-shop.test"
            )
            await expect(phone.locator("#dns-check")).not_to_be_empty()
            assert not await has_horizontal_scroll(phone)
            await screenshot(phone, "account-phone")
            # The user-name menu opens within a phone's width.
            await phone.get_by_role("button", name="keys-shop").click()
            menu = phone.locator("#user-menu")
            await expect(menu.get_by_role("link", name="Account Details")).to_be_visible()
            box = await menu.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
            assert not await has_horizontal_scroll(phone)

        async with new_page(browser, phone=True) as phone:
            await log_in(phone, running, running.operator_token)
            await expect(
                phone.get_by_role("heading", name="Deliverability console")
            ).to_be_visible()
            assert not await has_horizontal_scroll(phone)
            assert await low_contrast(phone) == []
            await screenshot(phone, "console-phone")


async def tab_to(page: Page, target_id: str, limit: int = 30) -> list[str]:
    """Press Tab until the element with `target_id` has focus; return what was passed."""
    passed: list[str] = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "(() => { const e = document.activeElement;"
            " return [e.id, e.className, (e.innerText || '').trim()]; })()"
        )
        if focused[0] == target_id:
            return passed
        passed.append(focused[2] or focused[1] or focused[0])
    raise AssertionError(f"#{target_id} not reached with Tab; passed {passed}")


async def tab_until(page: Page, target: Locator, limit: int = 40) -> None:
    """Press Tab until `target` has focus."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await target.evaluate("e => e === document.activeElement"):
            return
    raise AssertionError(f"{target} not reached with Tab")


async def focus_is_visible(page: Page) -> bool:
    style: dict[str, str] = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return {style: s.outlineStyle, width: s.outlineWidth}; })()"
    )
    return style["style"] != "none" and style["width"] not in ("0px", "")
