"""The deliverability console without a browser: filters, search, retries, the brand queue."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from linkcert.brand import brand_request, request_brand_domain
from linkcert.domains import create_account, domain_status, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.states import CertState, DnsState, FailureClass
from linkcert.store import Certificate, Domain, Store, utcnow
from linkcert.web.filters import DomainFilter, count_by_filter, find_console_rows, is_expiring
from tests.api_support import World
from tests.certs_support import ThrowawayCA, pem
from tests.web_support import BASE, CONSOLE_SETTINGS, SCRIPT, operator, page_csrf

POLICY = NamePolicy(allow_test_domains=True)
SETTINGS = CONSOLE_SETTINGS


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


def set_states(
    store: Store,
    name: str,
    dns: str,
    cert: str,
    *,
    failure: str | None = None,
    lifetime_days: float | None = None,
    days_left: float | None = None,
) -> None:
    """Put a domain in a state, as the worker would have left it."""
    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == name)).one()
        domain.dns_state, domain.cert_state, domain.failure_class = dns, cert, failure
        if lifetime_days is not None and days_left is not None:
            end = utcnow() + timedelta(days=days_left)
            certificate = Certificate(
                domain_id=domain.id,
                chain_pem="",
                serial="01",
                issuer="Test CA",
                not_before=end - timedelta(days=lifetime_days),
                not_after=end,
                fingerprint_sha256="00",
            )
            session.add(certificate)
            session.flush()
            domain.current_certificate_id = certificate.id


@pytest.fixture
def fleet(world: World) -> World:
    """alpha: pending; beta: failing (CAA); and one of each other kind."""
    store = world.store
    for name, domain in (
        ("gamma", "links.gamma.test"),
        ("delta", "links.delta.test"),
        ("epsilon", "links.epsilon.test"),
        ("zeta", "links.zeta.test"),
    ):
        account = create_account(store, name)
        set_tracking_domain(store, account.id, domain, POLICY)
    set_states(store, "links.beta.test", DnsState.CAA_BLOCKED, CertState.NONE)
    set_states(
        store, "links.gamma.test", DnsState.MOVED, CertState.ACTIVE, lifetime_days=90, days_left=60
    )
    set_states(
        store, "links.delta.test", DnsState.OK, CertState.ACTIVE, lifetime_days=90, days_left=5
    )
    set_states(
        store, "links.epsilon.test", DnsState.OK, CertState.ACTIVE, lifetime_days=90, days_left=70
    )
    set_states(
        store,
        "links.zeta.test",
        DnsState.OK,
        CertState.FAILED,
        failure=FailureClass.CHALLENGE_FAILED,
    )
    return world


def test_each_filter_holds_what_it_says(fleet: World) -> None:
    now = utcnow()

    def names(which: DomainFilter, search: str = "") -> list[str]:
        rows, _ = find_console_rows(fleet.store, which, search, now)
        return [row.status.domain for row in rows]

    assert names(DomainFilter.FAILING) == ["links.beta.test", "links.zeta.test"]
    assert names(DomainFilter.MOVED) == ["links.gamma.test"]
    assert names(DomainFilter.EXPIRING) == ["links.delta.test"]
    assert names(DomainFilter.PENDING) == ["links.alpha.test"]
    assert len(names(DomainFilter.ALL)) == 6
    assert names(DomainFilter.ALL, "EPS") == ["links.epsilon.test"]
    assert names(DomainFilter.ALL, "delta") == ["links.delta.test"]  # by account name too
    assert names(DomainFilter.ALL, "%") == []  # a LIKE wildcard is just a character
    counts = count_by_filter(fleet.store, "", now)
    assert counts == {
        DomainFilter.ALL: 6,
        DomainFilter.FAILING: 2,
        DomainFilter.EXPIRING: 1,
        DomainFilter.MOVED: 1,
        DomainFilter.PENDING: 1,
    }


def test_expiring_follows_each_certificates_lifetime() -> None:
    now = utcnow()
    ninety = (now - timedelta(days=80), now + timedelta(days=10))
    assert is_expiring(*ninety, now)  # 10 days left of 90
    assert not is_expiring(now - timedelta(days=60), now + timedelta(days=30), now)
    # A six-day certificate is not "expiring" at 2 days left (renewal is due at 3)...
    assert not is_expiring(now - timedelta(days=4), now + timedelta(days=2), now)
    # ...but is at one day left.
    assert is_expiring(now - timedelta(days=5), now + timedelta(days=1), now)
    assert is_expiring(now - timedelta(days=100), now - timedelta(days=10), now)  # expired


def test_paging_continues_after_the_last_name(fleet: World) -> None:
    now = utcnow()
    first, after = find_console_rows(fleet.store, DomainFilter.ALL, "", now, limit=4)
    assert len(first) == 4 and after == first[-1].status.domain
    rest, end = find_console_rows(fleet.store, DomainFilter.ALL, "", now, after=after or "")
    assert len(rest) == 2 and end is None


async def test_the_console_page_lists_and_filters(fleet: World) -> None:
    web = await operator(fleet)
    page = (await web.get("/console")).text
    for expected in ("Deliverability console", "links.zeta.test", "Failing", "Retry now"):
        assert expected in page
    failing = (await web.get("/console?filter=failing")).text
    assert "links.beta.test" in failing and "links.epsilon.test" not in failing
    assert "A CAA record does not allow our certificate authority" in failing
    searched = (await web.get("/console?q=gamma")).text
    assert "links.gamma.test" in searched and "links.beta.test" not in searched
    detail = await web.get("/console/domains/links.gamma.test")
    assert detail.status_code == 200
    assert "The domain no longer points to us" in detail.text
    missing = await web.get("/console/domains/links.nowhere.test")
    assert missing.status_code == 404


async def test_the_operators_menu_leads_to_the_console(world: World) -> None:
    web = await operator(world)
    page = (await web.get("/console")).text
    start = page.index('class="who-button"')
    menu = page[start : page.index("</ul>", start)]
    assert ">Deliverability team<" in menu
    assert '<a href="/console" aria-current="page">Deliverability console</a>' in menu
    domain_page = (await web.get("/console/domains/links.alpha.test")).text
    assert '<a href="/console">Deliverability console</a>' in domain_page
    assert ">Log out</button>" in menu and "Account Details" not in menu


async def test_a_forced_retry_wakes_the_worker(fleet: World) -> None:
    web = await operator(fleet)
    csrf = await page_csrf(web, "/console")
    response = await web.post(
        "/console/domains/retry",
        data={"domain": "links.zeta.test", "back": "/console?filter=failing", "csrf_token": csrf},
        headers={"Origin": BASE},
    )
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/console?filter=failing&notice=retried&domain=links.zeta.test"
    )
    assert fleet.wakes == [1]
    page = (await web.get(response.headers["location"])).text
    assert "Retrying links.zeta.test now." in page
    offsite = await web.post(
        "/console/domains/retry",
        data={"domain": "links.zeta.test", "back": "https://evil.test/", "csrf_token": csrf},
        headers={"Origin": BASE},
    )
    assert offsite.headers["location"].startswith("/console?")


async def test_approve_and_reject_from_the_queue(world: World) -> None:
    first = request_brand_domain(world.store, world.a_id, "links.brand-a.test", "note A", POLICY)
    second = request_brand_domain(world.store, world.b_id, "links.brand-b.test", "", POLICY)
    web = await operator(world)
    page = (await web.get("/console")).text
    assert "links.brand-a.test" in page and "note A" in page
    csrf = await page_csrf(web, "/console")
    approved = await web.post(
        f"/console/brand-requests/{first.id}/approve",
        data={"csrf_token": csrf, "back": "/console"},
        headers={"Origin": BASE},
    )
    assert approved.headers["location"] == f"/console?notice=approved&id={first.id}#queue"
    assert "is being secured automatically" in (await web.get(approved.headers["location"])).text
    assert world.wakes == [1]
    assert domain_status(world.store, "links.brand-a.test").account == "alpha"
    rejected = await web.post(
        f"/console/brand-requests/{second.id}/reject",
        data={"csrf_token": csrf},
        headers={"Origin": BASE},
    )
    assert rejected.status_code == 303
    assert brand_request(world.store, second.id).status == "rejected"
    again = await web.post(
        f"/console/brand-requests/{second.id}/approve",
        data={"csrf_token": csrf},
        headers={"Origin": BASE},
    )
    assert again.status_code == 409 and "rejected" in again.text


async def test_upload_from_the_console(world: World, ca: ThrowawayCA, tmp_path: Path) -> None:
    request = request_brand_domain(world.store, world.a_id, "links.brand-a.test", "", POLICY)
    bundle = tmp_path / "brand-roots.pem"  # the brand's private CA (upload_ca_bundle)
    bundle.write_bytes(pem(ca.root))
    web = await operator(world, SETTINGS.model_copy(update={"upload_ca_bundle": bundle}))
    csrf = await page_csrf(web, "/console")
    path = f"/console/brand-requests/{request.id}/upload"
    wrong = ca.issue("links.brand-a.test")
    refused = await web.post(
        path,
        data={"csrf_token": csrf},
        files={
            "certificate_file": ("chain.pem", wrong.chain_pem, "application/x-pem-file"),
            "private_key_file": ("key.pem", ca.issue("links.brand-a.test").key_pem, "text/plain"),
        },
        headers={"Origin": BASE},
    )
    assert refused.status_code == 422
    assert "The private key does not belong to the certificate" in refused.text
    assert '<details class="upload" open>' in refused.text  # the form stays open
    good = ca.issue("links.brand-a.test")
    served = await web.post(
        path,
        data={
            "csrf_token": csrf,
            "certificate_text": good.chain_pem.decode(),
            "private_key_text": good.key_pem.decode(),
        },
        headers={"Origin": BASE},
    )
    assert served.status_code == 303, served.text
    page = (await web.get(served.headers["location"])).text
    assert "now serves the uploaded certificate" in page
    status = domain_status(world.store, "links.brand-a.test")
    assert status.cert_state == "active" and status.issuer == "Throwaway Brand CA Issuing"
    detail = (await web.get("/console/domains/links.brand-a.test")).text
    assert "uploaded certificate" in detail and "HTTPS is on" in detail


async def test_the_domain_pages_retry_answers_its_script(fleet: World) -> None:
    web = await operator(fleet)
    csrf = await page_csrf(web, "/console/domains/links.zeta.test")
    response = await web.post(
        "/console/domains/retry",
        data={"domain": "links.zeta.test", "csrf_token": csrf},
        headers=SCRIPT,
    )
    body = response.json()
    assert body["notice"] == "Retrying links.zeta.test now."
    assert "A retry was requested" in body["status"]["html"]
    refused = await web.post(
        "/console/domains/retry",
        data={"domain": "links.nowhere.test", "csrf_token": csrf},
        headers=SCRIPT,
    )
    assert refused.status_code == 404 and refused.json()["error"] == "There is no such domain."
