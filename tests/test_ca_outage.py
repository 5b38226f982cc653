"""A CA outage is a wait, not a failure: every surface says so, and the same thing.

linkcert talks to Pebble through a TCP proxy; stopping the proxy makes the CA refuse
connections, as a CA that is down does. While it is down, a newly saved domain's certificate
is `waiting_for_ca` with the reason and the next attempt in words, on the API, the CLI, the
customer's page and the console; once the proxy is back, the domain is secured.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from linkcert.auth import create_token
from linkcert.cli import app as cli
from linkcert.domains import create_account, domain_status, retry_now, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.service.runtime import Runtime
from linkcert.store import Store
from linkcert.testbed.waiting import wait_for_async
from tests.e2e_support import Platform, start_platform, wait_until_secured
from tests.tcpproxy_support import TcpProxy
from tests.web_support import csrf_of

pytestmark = pytest.mark.pebble

DOMAIN = "links.outage-shop.test"
NOTE = re.compile(
    r"The certificate authority is unavailable; the next attempt is "
    r"(in \d+ (?:seconds?|minutes?)|right away)"
    r" \(at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\)\."
)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    world = start_platform(tmp_path / "pebble")
    yield world
    world.pebble.stop()
    world.dns.stop()


def text_of(html: str) -> str:
    """The page's words, as a reader sees them."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def logged_in(url: str, token: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, trust_env=False, timeout=30)
    form = await client.get("/login")
    response = await client.post(
        "/login", data={"token": token, "csrf_token": csrf_of(form.text)}, headers={"Origin": url}
    )
    assert response.status_code == 303, response.text
    return client


async def test_a_ca_outage_reads_as_a_wait_on_every_surface(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pebble = platform.pebble
    proxy = TcpProxy("127.0.0.1", pebble.acme_port)
    # Pebble writes its URLs with the host the client asked for, so every ACME request
    # after the directory's goes through the proxy too.
    directory = f"https://127.0.0.1:{proxy.port}/dir"
    db_url = f"sqlite:///{tmp_path / 'linkcert.sqlite3'}"
    settings = platform.settings(db_url, tmp_path, acme_directory_url=directory)
    store = Store(db_url)
    store.migrate()
    runtime = Runtime(settings, store=store)  # the CA is down from the start
    await runtime.start()
    url = f"http://127.0.0.1:{runtime.api_port}"
    try:
        shop = create_account(store, "outage-shop", ["owner@outage-shop.test"])
        account_token, _ = create_token(store, shop.id, "page")
        operator_token, _ = create_token(store, None, "console")
        platform.point(DOMAIN)
        set_tracking_domain(store, shop.id, DOMAIN, NamePolicy(allow_test_domains=True))
        runtime.wake()
        await wait_for_async(lambda: domain_status(store, DOMAIN).cert_state != "none", timeout=60)
        await wait_for_async(
            lambda: domain_status(store, DOMAIN).failure_class == "ca_unavailable", timeout=60
        )
        status = domain_status(store, DOMAIN)
        assert status.cert_state == "waiting_for_ca", status
        assert status.next_attempt_at is not None
        when = f"{status.next_attempt_at:%Y-%m-%d %H:%M:%S}"
        assert "connection refused" in status.problems[0]["message"]

        # The API.
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as api:
            response = await api.get(
                f"/api/v1/domains/{DOMAIN}",
                headers={"Authorization": f"Bearer {operator_token}"},
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["cert_state"] == "waiting_for_ca"
        assert body["failure_class"] == "ca_unavailable"
        assert body["cert_state_text"].startswith("Waiting for the certificate authority")
        api_note = NOTE.fullmatch(body["cert_state_note"])
        assert api_note is not None and api_note.group(2) == when

        # The CLI, on the same database.
        monkeypatch.setenv("LINKCERT_DATABASE_URL", db_url)
        monkeypatch.setenv("LINKCERT_TRACKING_KEY", "t" * 48)
        shown = CliRunner().invoke(cli, ["domain", "status", DOMAIN])
        assert shown.exit_code == 0, shown.stderr
        words = " ".join(shown.stdout.split())
        assert "Certificate: Waiting for the certificate authority" in words
        cli_note = NOTE.search(words)
        assert cli_note is not None and cli_note.group(2) == when
        assert "failed" not in words.lower()

        # The customer's page.
        browser = await logged_in(url, account_token)
        page = text_of((await browser.get("/account")).text)
        await browser.aclose()
        assert "Waiting for the certificate authority" in page
        page_note = NOTE.search(page)
        assert page_note is not None and page_note.group(2) == when
        assert "failed" not in page.lower()

        # The deliverability console: the list (not among the failing) and the domain's page.
        console = await logged_in(url, operator_token)
        failing = text_of((await console.get("/console?filter=failing")).text)
        pending = text_of((await console.get("/console?filter=pending")).text)
        detail = text_of((await console.get(f"/console/domains/{DOMAIN}")).text)
        await console.aclose()
        assert DOMAIN not in failing
        assert DOMAIN in pending
        list_note = NOTE.search(pending)
        assert list_note is not None and list_note.group(2) == when
        detail_note = NOTE.search(detail)
        assert detail_note is not None and detail_note.group(2) == when

        # The CA comes back: the next attempt (forced here rather than waited for) secures it.
        proxy.start()
        retry_now(store, DOMAIN)
        runtime.wake()
        await wait_until_secured(store, DOMAIN, timeout=90)
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as api:
            body = (
                await api.get(
                    f"/api/v1/domains/{DOMAIN}",
                    headers={"Authorization": f"Bearer {operator_token}"},
                )
            ).json()
        assert body["cert_state"] == "active" and body["cert_state_note"] is None
    finally:
        await runtime.aclose()
        proxy.stop()
