"""The Account Details page without a browser: what it shows, and each form with and without
the page's script."""

from __future__ import annotations

import httpx
import pytest

from linkcert.auth import create_token
from linkcert.brand import list_brand_requests
from linkcert.config import Settings
from linkcert.domains import (
    create_account,
    domain_status,
    remove_tracking_domain,
    tracking_domain_status,
)
from linkcert.store import Store
from linkcert.testbed.localdns import LocalDNSServer
from linkcert.web import create_app
from tests.api_support import World
from tests.ownership_support import account_target
from tests.web_support import BASE, SCRIPT, browser, log_in, page_csrf

TARGET = "edge.platform.test"
SETTINGS = Settings(
    allow_test_domains=True,
    platform_domains=("platform.test",),
    cname_targets=(TARGET,),
    dns_timeout=1.0,
)


async def logged_in(world: World, settings: Settings = SETTINGS) -> httpx.AsyncClient:
    app = create_app(world.store, settings, wake=lambda: world.wakes.append(1), rate_limit=None)
    web = browser(app)
    await log_in(web, world.a_token)
    return web


def own_target(world: World) -> str:
    """Alpha's own CNAME target: what its page tells it to point at."""
    return account_target(world.store, world.a_id, TARGET)


def label_of(world: World) -> str:
    return own_target(world).split(".", 1)[0]


async def post_form(web: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    csrf = await page_csrf(web, "/account")
    return await web.post(path, data={**fields, "csrf_token": csrf}, headers={"Origin": BASE})


async def test_the_page_shows_the_account_domain_record_and_status(world: World) -> None:
    web = await logged_in(world)
    page = (await web.get("/account")).text
    for expected in (
        "Account Details",
        ">ACCOUNT<",
        "Account Information",
        "alpha",
        "ops@alpha.test",
        'value="links.alpha.test"',
        f"links.alpha.test. CNAME {own_target(world)}.",
        f"_linkcert.links.alpha.test. TXT &#34;linkcert={label_of(world)}&#34;",
        "SAVE CHANGES",
        "HTTPS status",
        "Checking your DNS",
        "No certificate yet",
        'aria-live="polite"',
    ):
        assert expected in page, expected
    assert "beta" not in page


async def test_saving_without_the_script_redirects_with_a_notice(world: World) -> None:
    web = await logged_in(world)
    response = await post_form(web, "/account/tracking-domain", domain="Links.NEW-alpha.test")
    assert response.status_code == 303
    assert response.headers["location"] == "/account?notice=saved"
    page = (await web.get(response.headers["location"])).text
    assert "Saved. We are securing your link tracking domain now" in page
    assert f"links.new-alpha.test. CNAME {own_target(world)}." in page
    assert tracking_domain_status(world.store, world.a_id).domain == "links.new-alpha.test"
    assert not domain_status(world.store, "links.alpha.test").wanted
    assert world.wakes == [1]
    again = await post_form(web, "/account/tracking-domain", domain="links.new-alpha.test")
    assert again.headers["location"] == "/account?notice=unchanged"
    assert world.wakes == [1]


@pytest.mark.parametrize(
    ("typed", "status", "expected"),
    [
        ("https://links.alpha2.test/path", 422, "looks like a web address"),
        ("edge.platform.test", 422, "one of the platform"),
        ("", 422, "Enter your link tracking domain"),
        ("x.platform.test", 422, "platform"),
    ],
)
async def test_a_refused_domain_is_explained_next_to_the_field(
    world: World, typed: str, status: int, expected: str
) -> None:
    web = await logged_in(world)
    response = await post_form(web, "/account/tracking-domain", domain=typed)
    assert response.status_code == status
    assert expected.lower() in response.text.lower()
    assert 'aria-invalid="true"' in response.text
    if typed:
        assert f'value="{typed}"' in response.text  # what was typed stays in the field
    assert tracking_domain_status(world.store, world.a_id).domain == "links.alpha.test"


async def test_saving_with_the_script_answers_json(world: World) -> None:
    web = await logged_in(world)
    csrf = await page_csrf(web, "/account")
    saved = await web.post(
        "/account/tracking-domain",
        data={"domain": "links.new-alpha.test", "csrf_token": csrf},
        headers=SCRIPT,
    )
    body = saved.json()
    assert body["notice"].startswith("Saved.")
    assert "links.new-alpha.test" in body["status"]["html"]
    assert body["status"]["poll_ms"] == 2000
    refused = await web.post(
        "/account/tracking-domain",
        data={"domain": own_target(world)},
        headers={**SCRIPT, "X-CSRF-Token": csrf},
    )
    assert refused.status_code == 422
    assert refused.json()["field"] == "domain"
    assert "platform's own domains" in refused.json()["error"]


def records_block(page: str) -> str:
    """The records the page shows, whitespace aside (the script puts `records_html` there)."""
    block = between(page, '<div id="dns-records">', '<template id="dns-guess"')
    block = block.removeprefix('<div id="dns-records">').strip().removesuffix("</div>")
    return " ".join(block.split())


async def test_the_records_read_as_a_choice_of_cname_or_txt(world: World) -> None:
    web = await logged_in(world)
    page = (await web.get("/account")).text
    shown = records_block(page)
    cname = f"links.alpha.test. CNAME {own_target(world)}."
    txt = f"_linkcert.links.alpha.test. TXT &#34;linkcert={label_of(world)}&#34;"
    assert shown.count('class="record-group"') == 1  # no CAA step without a check saying so
    assert "Add one of these two records: either one proves the domain is yours." in shown
    assert shown.index("Recommended: the CNAME record.") < shown.index(cname)
    assert shown.index(cname) < shown.index("Or the TXT record") < shown.index(txt)
    assert "for a domain&#39;s root" in shown
    heading = between(page, 'id="dns-help-heading">', "</h3>")
    assert heading.endswith("Your DNS records")
    for wrong in ("DNS records to create", "create this record", "Your DNS record<"):
        assert wrong not in page, wrong


async def test_after_a_save_the_script_shows_what_a_reload_shows(world: World) -> None:
    web = await logged_in(world)
    csrf = await page_csrf(web, "/account")
    saved = await web.post(
        "/account/tracking-domain",
        data={"domain": "Links.New-Alpha.test", "csrf_token": csrf},
        headers=SCRIPT,
    )
    from_script = " ".join(saved.json()["records_html"].split())
    reloaded = records_block((await web.get("/account")).text)
    assert from_script == reloaded
    assert f"links.new-alpha.test. CNAME {own_target(world)}." in from_script
    assert f"_linkcert.links.new-alpha.test. TXT &#34;linkcert={label_of(world)}&#34;" in reloaded
    assert "Add one of these two records" in from_script


async def test_the_status_changes_its_digest_only_when_it_changes(world: World) -> None:
    web = await logged_in(world)
    first = (await web.get("/account/status", headers=SCRIPT)).json()
    second = (await web.get("/account/status", headers=SCRIPT)).json()
    assert first["digest"] == second["digest"]
    assert first["summary"] == (
        "links.alpha.test: DNS: Checking your DNS. Certificate: No certificate yet."
    )
    await post_form(web, "/account/retry")
    third = (await web.get("/account/status", headers=SCRIPT)).json()
    assert third["digest"] != first["digest"]  # a new event: "A retry was requested"
    assert "A retry was requested" in third["html"]


async def test_retry_of_a_detached_domain_says_how_to_resume(world: World, store: Store) -> None:
    web = await logged_in(world)
    csrf = await page_csrf(web, "/account")
    remove_tracking_domain(store, world.a_id)
    response = await web.post("/account/retry", data={"csrf_token": csrf}, headers={"Origin": BASE})
    assert response.status_code == 404  # no tracking domain any more
    assert "no link tracking domain" in response.text


async def test_the_dns_check_shows_the_caa_record_to_add(
    world: World, dns_server: LocalDNSServer
) -> None:
    settings = SETTINGS.model_copy(update={"nameservers": (dns_server.nameserver,)})
    web = await logged_in(world, settings)
    dns_server.add(own_target(world), "A", "127.0.0.1")
    dns_server.add("links.shop.test", "CNAME", own_target(world) + ".")
    dns_server.add("shop.test", "CAA", '0 issue "digicert.com"')
    csrf = await page_csrf(web, "/account")
    response = await web.post(
        "/account/dns-check",
        json={"domain": "links.shop.test"},
        headers={**SCRIPT, "X-CSRF-Token": csrf},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "caa_blocked"
    assert [(r["zone"], r["present"]) for r in body["records"]] == [
        (f"links.shop.test. CNAME {own_target(world)}.", True),
        (f'_linkcert.links.shop.test. TXT "linkcert={label_of(world)}"', False),
        ('shop.test. CAA 0 issue "letsencrypt.org"', False),
    ]
    assert "digicert.com" in body["problems"][0]["message"]
    # Rendered as the page renders it: the choice, then the CAA record as a step of its own.
    shown = " ".join(body["records_html"].split())
    proof, caa = shown.split('<div class="record-group" data-kind="caa">')
    assert "Add one of these two records" in proof and "CNAME" in proof and "TXT" in proof
    assert "CAA" not in proof
    assert caa.lstrip().startswith('<p class="record-intro">Also required: this CAA record')
    assert "✓</span> In place" in proof and "Not in place yet" in caa
    # A name that does not exist yet: only the CNAME, not in place, and what DNS says now.
    fresh = await web.post(
        "/account/dns-check",
        json={"domain": "links.new.test"},
        headers={**SCRIPT, "X-CSRF-Token": csrf},
    )
    assert fresh.json()["state"] == "points_elsewhere"
    assert fresh.json()["records"][0]["present"] is False
    assert fresh.json()["problems"][0]["code"] == "name_not_found"


async def test_the_dns_check_answers_even_when_dns_does_not(world: World) -> None:
    # A nameserver that never answers: the check gives up in time, and says so.
    settings = SETTINGS.model_copy(update={"nameservers": ("127.0.0.1:9",), "dns_timeout": 0.5})
    web = await logged_in(world, settings)
    csrf = await page_csrf(web, "/account")
    response = await web.post(
        "/account/dns-check",
        json={"domain": "links.slow.test"},
        headers={**SCRIPT, "X-CSRF-Token": csrf},
    )
    body = response.json()
    assert body["state"] in ("unknown", "dns_error")
    assert body["records"][0]["zone"] == f"links.slow.test. CNAME {own_target(world)}."


async def test_asking_for_a_brand_domain(world: World) -> None:
    web = await logged_in(world)
    response = await post_form(
        web, "/account/brand-requests", domain="links.brand-a.test", note="spring launch"
    )
    assert response.headers["location"] == "/account?notice=brand-requested#brand"
    page = (await web.get("/account?notice=brand-requested")).text
    assert "sent to our deliverability team" in page
    assert "links.brand-a.test" in page and "Waiting for our deliverability team" in page
    [request] = list_brand_requests(world.store, account_id=world.a_id)
    assert request.note == "spring launch"
    twice = await post_form(web, "/account/brand-requests", domain="links.brand-a.test")
    assert twice.status_code == 409 and "already requested" in twice.text


async def test_text_from_the_store_is_escaped(world: World, store: Store) -> None:
    sneaky = create_account(store, "<script>alert(1)</script>", ["a@b.test"])
    token, _ = create_token(store, sneaky.id, "x")
    app = create_app(store, SETTINGS, rate_limit=None)
    web = browser(app)
    await log_in(web, token)
    page = (await web.get("/account")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def between(page: str, start: str, end: str) -> str:
    """The part of `page` from `start` to the first `end` after it."""
    assert start in page, start
    head = page.index(start)
    return page[head : page.index(end, head)]


async def test_the_user_name_opens_a_menu_that_works_without_scripts_too(world: World) -> None:
    web = await logged_in(world)
    page = (await web.get("/account")).text
    button = between(page, '<button type="button" class="who-button"', "</button>")
    for expected in ('id="user-menu-button"', 'aria-expanded="false"', 'aria-controls="user-menu"'):
        assert expected in button, expected
    assert ">alpha<" in button
    menu = between(page, '<ul class="user-menu" id="user-menu"', "</ul>")
    assert " hidden>" in menu  # closed until the button opens it
    assert '<a href="/account" aria-current="page">Account Details</a>' in menu
    assert 'action="/logout"' in menu and ">Log out</button>" in menu
    # Without scripts, a stylesheet hides the button and the same choices show as links.
    assert '<noscript><link rel="stylesheet" href="/static/noscript.css' in page
    fallback = between(page, "<noscript>\n", "</noscript>")
    assert ">Account Details</a>" in fallback and ">Log out</button>" in fallback
    assert (await web.get("/static/noscript.css")).status_code == 200


async def test_the_account_tab_is_a_selected_tab_over_its_panel(world: World) -> None:
    web = await logged_in(world)
    page = (await web.get("/account")).text
    assert 'role="tablist" aria-label="Account sections"' in page
    tab = between(page, '<a role="tab"', "</a>")
    for expected in ('id="tab-account"', 'aria-selected="true"', 'aria-controls="panel-account"'):
        assert expected in tab, expected
    assert 'role="tabpanel" id="panel-account" aria-labelledby="tab-account"' in page


async def test_the_domain_field_and_its_records_are_in_account_information(world: World) -> None:
    web = await logged_in(world)
    page = (await web.get("/account")).text
    info = between(page, 'aria-labelledby="info-heading" id="account-information"', "</section>")
    for expected in (
        "ops@alpha.test",
        '<label for="domain">Link tracking domain</label>',
        'id="domain-hint"',
        'id="dns-help"',
        f"links.alpha.test. CNAME {own_target(world)}.",
        ">SAVE CHANGES</button>",
        'id="notice"',
    ):
        assert expected in info, expected
    # The HTTPS status is the very next section.
    after = page[page.index(info) + len(info) :]
    assert after.split("<section", 1)[1].lstrip().startswith('class="card"')
    assert 'id="status-card"' in after.split("<section", 2)[1]


async def test_the_brand_card_names_the_deliverability_team_when_configured(
    world: World,
) -> None:
    unset = await logged_in(world, SETTINGS.model_copy(update={"operator_email": "noc@p.test"}))
    page = (await unset.get("/account")).text
    assert "Prefer to write?" not in page
    assert "noc@p.test" not in page  # the operators' own address is not for customers

    settings = SETTINGS.model_copy(
        update={"deliverability_email": "brand@platform.test,deliver@platform.test"}
    )
    web = await logged_in(world, settings)
    brand = between((await web.get("/account")).text, 'id="brand"', "</section>")
    assert "Prefer to write? Email our deliverability team at" in brand
    for address in ("brand@platform.test", "deliver@platform.test"):
        link = f'<a href="mailto:{address}?subject=Brand%20link%20tracking%20domain%20for%20alpha">'
        assert link + f"{address}</a>" in brand


async def test_an_account_may_have_only_so_many_brand_requests_waiting(world: World) -> None:
    web = await logged_in(world, SETTINGS.model_copy(update={"brand_requests_open_max": 2}))
    for name in ("links.one.test", "links.two.test"):
        response = await post_form(web, "/account/brand-requests", domain=name)
        assert response.status_code == 303, response.text
    third = await post_form(web, "/account/brand-requests", domain="links.three.test")
    assert third.status_code == 409
    assert "already has 2 brand domain requests waiting" in third.text
    assert "Wait for an answer to the requests you have made" in third.text
    assert len(list_brand_requests(world.store, account_id=world.a_id)) == 2
