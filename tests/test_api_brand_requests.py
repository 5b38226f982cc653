"""/brand-requests and /dns-check: what each token may do, and tenant isolation.

Account A must not learn whether account B's requests exist: B's request answers A exactly
like a request that does not exist, and stays unchanged. Deciding is for operators only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from linkcert.api import create_app
from linkcert.brand import brand_request, list_brand_requests
from linkcert.config import Settings
from linkcert.domains import domain_status
from linkcert.keys import generate_master_key
from linkcert.store.models import Notification
from linkcert.testbed.localdns import LocalDNSServer
from linkcert.web import create_app as create_pages
from tests.api_support import World, app_for, assert_problem, bearer, client
from tests.certs_support import ThrowawayCA, pem
from tests.ownership_support import account_target
from tests.web_support import browser, log_in

MISSING = 424242
UPLOAD_SETTINGS = Settings(
    allow_test_domains=True,
    master_key=generate_master_key("t"),  # type: ignore[arg-type]
    deliverability_email="deliverability@platform.test",
)


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


@pytest.fixture(scope="module")
def bundle(ca: ThrowawayCA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The brand's private CA root, as the operator configures it (upload_ca_bundle)."""
    path = tmp_path_factory.mktemp("bundle") / "brand-roots.pem"
    path.write_bytes(pem(ca.root))
    return path


@pytest.fixture
def api(world: World, bundle: Path) -> httpx.AsyncClient:
    settings = UPLOAD_SETTINGS.model_copy(update={"upload_ca_bundle": bundle})
    app = create_app(world.store, settings, wake=lambda: world.wakes.append(1), rate_limit=None)
    return client(app)


async def ask(api: httpx.AsyncClient, token: str, domain: str, **more: Any) -> httpx.Response:
    return await api.post(
        "/api/v1/brand-requests", json={"domain": domain, **more}, headers=bearer(token)
    )


async def test_an_account_asks_and_the_team_is_told(api: httpx.AsyncClient, world: World) -> None:
    response = await ask(api, world.a_token, "Links.Brand-A.test", note="for the spring brand")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["domain"], body["account_id"], body["status"], body["note"]) == (
        "links.brand-a.test",
        world.a_id,
        "requested",
        "for the spring brand",
    )
    with world.store.session() as session:
        told = session.scalars(
            select(
                Notification.kind,
            ).where(Notification.domain_name == "links.brand-a.test")
        ).all()
    assert told == ["brand_requested"]
    again = await ask(api, world.a_token, "links.brand-a.test")
    assert_problem(again, 409, "conflict")
    invalid = await ask(api, world.a_token, "https://links.brand-a.test/")
    assert assert_problem(invalid, 422, "invalid-domain")["code"] == "looks_like_url"


async def test_operators_ask_for_a_named_account(api: httpx.AsyncClient, world: World) -> None:
    nameless = await ask(api, world.operator, "links.brand.test")
    assert_problem(nameless, 422, "validation-error")
    named = await ask(api, world.operator, "links.brand.test", account_id=world.b_id)
    assert named.status_code == 201 and named.json()["account"] == "beta"
    nowhere = await ask(api, world.operator, "links.brand2.test", account_id=MISSING)
    assert_problem(nowhere, 404, "not-found")


async def test_another_accounts_requests_look_missing(api: httpx.AsyncClient, world: World) -> None:
    theirs = (await ask(api, world.b_token, "links.brand-b.test")).json()["id"]
    before = brand_request(world.store, theirs)
    pairs = [
        (f"/api/v1/brand-requests/{theirs}", f"/api/v1/brand-requests/{MISSING}"),
    ]
    for foreign_path, missing_path in pairs:
        foreign = await api.get(foreign_path, headers=bearer(world.a_token))
        nowhere = await api.get(missing_path, headers=bearer(world.a_token))
        foreign_problem = assert_problem(foreign, 404, "not-found")
        nowhere_problem = assert_problem(nowhere, 404, "not-found")
        assert foreign_problem["detail"].replace(str(theirs), "ID") == nowhere_problem[
            "detail"
        ].replace(str(MISSING), "ID")
    # Asking in B's name looks like asking for an account that does not exist.
    forged = await ask(api, world.a_token, "links.sneaky.test", account_id=world.b_id)
    missing = await ask(api, world.a_token, "links.sneaky.test", account_id=MISSING)
    assert assert_problem(forged, 404, "not-found")["detail"].replace(
        str(world.b_id), "ID"
    ) == assert_problem(missing, 404, "not-found")["detail"].replace(str(MISSING), "ID")
    listed = (await api.get("/api/v1/brand-requests", headers=bearer(world.a_token))).json()
    assert listed["items"] == []
    assert brand_request(world.store, theirs) == before
    assert [r.account_id for r in list_brand_requests(world.store)] == [world.b_id]


async def test_account_tokens_cannot_decide(api: httpx.AsyncClient, world: World) -> None:
    own = (await ask(api, world.a_token, "links.brand-a.test")).json()["id"]
    for action, body in (("approve", None), ("reject", None), ("upload", _upload_body())):
        for request_id in (own, MISSING):
            response = await api.post(
                f"/api/v1/brand-requests/{request_id}/{action}",
                json=body,
                headers=bearer(world.a_token),
            )
            assert_problem(response, 403, "operator-only")
    assert brand_request(world.store, own).status == "requested"
    assert world.wakes == []


def _upload_body(certificate: bytes = b"x", key: bytes = b"y") -> dict[str, str]:
    return {"certificate": certificate.decode(), "private_key": key.decode()}


async def test_operators_see_the_queue_and_approve(api: httpx.AsyncClient, world: World) -> None:
    first = (await ask(api, world.a_token, "links.brand-a.test")).json()["id"]
    second = (await ask(api, world.b_token, "links.brand-b.test")).json()["id"]
    queue = (await api.get("/api/v1/brand-requests", headers=bearer(world.operator))).json()
    assert [item["id"] for item in queue["items"]] == [first, second]
    paged = await api.get("/api/v1/brand-requests?limit=1", headers=bearer(world.operator))
    assert f"after={first}" in paged.json()["next"]

    approved = await api.post(
        f"/api/v1/brand-requests/{first}/approve", headers=bearer(world.operator)
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"].startswith("operator token")
    assert world.wakes == [1]
    assert domain_status(world.store, "links.brand-a.test").account == "alpha"
    twice = await api.post(
        f"/api/v1/brand-requests/{first}/approve", headers=bearer(world.operator)
    )
    assert_problem(twice, 409, "request-closed")

    rejected = await api.post(
        f"/api/v1/brand-requests/{second}/reject", headers=bearer(world.operator)
    )
    assert rejected.json()["status"] == "rejected"
    waiting = await api.get(
        "/api/v1/brand-requests?status=requested", headers=bearer(world.operator)
    )
    assert waiting.json()["items"] == []
    nowhere = await api.post(
        f"/api/v1/brand-requests/{MISSING}/approve", headers=bearer(world.operator)
    )
    assert_problem(nowhere, 404, "not-found")


async def test_upload_checks_then_serves(
    api: httpx.AsyncClient, world: World, ca: ThrowawayCA
) -> None:
    request_id = (await ask(api, world.a_token, "links.brand-a.test")).json()["id"]
    path = f"/api/v1/brand-requests/{request_id}/upload"
    wrong = ca.issue("links.other.test")
    refused = await api.post(
        path, json=_upload_body(wrong.chain_pem, wrong.key_pem), headers=bearer(world.operator)
    )
    problem = assert_problem(refused, 422, "invalid-certificate")
    assert "does not cover links.brand-a.test" in problem["detail"]
    assert "BEGIN" not in refused.text
    assert brand_request(world.store, request_id).status == "requested"

    good = ca.issue("links.brand-a.test")
    served = await api.post(
        path, json=_upload_body(good.chain_pem, good.key_pem), headers=bearer(world.operator)
    )
    assert served.status_code == 200, served.text
    assert served.json()["status"] == "uploaded"
    status = domain_status(world.store, "links.brand-a.test")
    assert (status.cert_state, status.issuer) == ("active", "Throwaway Brand CA Issuing")
    # The account follows its brand domain like its own.
    own = await api.get("/api/v1/domains/links.brand-a.test", headers=bearer(world.a_token))
    assert own.json()["cert_state_text"] == "Secured"


async def test_upload_without_a_master_key_is_a_clear_error(world: World) -> None:
    api = client(app_for(world))  # settings without a master key
    request_id = (await ask(api, world.a_token, "links.brand-a.test")).json()["id"]
    response = await api.post(
        f"/api/v1/brand-requests/{request_id}/upload",
        json=_upload_body(),
        headers=bearer(world.operator),
    )
    assert "LINKCERT_MASTER_KEY" in assert_problem(response, 503, "uploads-unavailable")["fix"]


async def test_dns_check_shows_the_records_to_add(world: World, dns_server: LocalDNSServer) -> None:
    settings = Settings(
        allow_test_domains=True,
        cname_targets=("edge.platform.test",),
        nameservers=(dns_server.nameserver,),
        dns_timeout=1.0,
    )
    api = client(create_app(world.store, settings, rate_limit=None))
    dns_server.add("edge.platform.test", "A", "127.0.0.1")
    dns_server.add("links.shop.test", "CNAME", "edge.platform.test.")
    dns_server.add("shop.test", "CAA", '0 issue "pki.goog"')
    response = await api.post(
        "/api/v1/dns-check", json={"domain": "links.shop.test"}, headers=bearer(world.a_token)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "caa_blocked" and not body["ready"]
    # The records are this account's own: the shared target the name points at proves nothing.
    own = account_target(world.store, world.a_id, "edge.platform.test")
    label = own.split(".", 1)[0]
    assert [(record["zone"], record["present"]) for record in body["records"]] == [
        (f"links.shop.test. CNAME {own}.", False),
        (f'_linkcert.links.shop.test. TXT "linkcert={label}"', False),
        ('shop.test. CAA 0 issue "letsencrypt.org"', False),
    ]
    codes = [problem["code"] for problem in body["problems"]]
    assert codes == ["ownership_not_proven", "caa_not_authorized"]
    anonymous = await api.post("/api/v1/dns-check", json={"domain": "links.shop.test"})
    assert_problem(anonymous, 401, "unauthenticated")


async def test_open_requests_per_account_are_capped(world: World) -> None:
    settings = UPLOAD_SETTINGS.model_copy(update={"brand_requests_open_max": 2})
    api = client(create_app(world.store, settings, rate_limit=None))
    for name in ("links.one.test", "links.two.test"):
        assert (await ask(api, world.a_token, name)).status_code == 201
    refused = await ask(api, world.a_token, "links.three.test")
    body = assert_problem(refused, 409, "too-many-open-requests")
    assert body["limit"] == 2 and "2 brand domain requests waiting" in body["detail"]
    with world.store.session() as session:
        told = session.scalars(
            select(Notification.domain_name).where(Notification.kind == "brand_requested")
        ).all()
    assert "links.three.test" not in told  # the team is not emailed for a refused request
    # Another account has its own allowance; a decision frees a place.
    assert (await ask(api, world.b_token, "links.beta-brand.test")).status_code == 201
    first = list_brand_requests(world.store, account_id=world.a_id)[0]
    decided = await api.post(
        f"/api/v1/brand-requests/{first.id}/reject", headers=bearer(world.operator)
    )
    assert decided.status_code == 200, decided.text
    assert (await ask(api, world.a_token, "links.three.test")).status_code == 201


async def test_an_upload_from_a_private_ca_needs_the_bundle_and_is_marked(
    world: World, ca: ThrowawayCA, bundle: Path
) -> None:
    without = client(create_app(world.store, UPLOAD_SETTINGS, rate_limit=None))
    request_id = (await ask(without, world.a_token, "links.private.test")).json()["id"]
    leaf = ca.issue("links.private.test")
    path = f"/api/v1/brand-requests/{request_id}/upload"
    body = _upload_body(leaf.chain_pem, leaf.key_pem)
    refused = await without.post(path, json=body, headers=bearer(world.operator))
    problem = assert_problem(refused, 422, "invalid-certificate")
    assert "does not lead to a publicly trusted root" in problem["detail"]
    assert "upload_ca_bundle" in problem["detail"]
    assert brand_request(world.store, request_id).status == "requested"

    settings = UPLOAD_SETTINGS.model_copy(update={"upload_ca_bundle": bundle})
    app = create_app(world.store, settings, rate_limit=None)
    accepted = await client(app).post(path, json=body, headers=bearer(world.operator))
    assert accepted.status_code == 200, accepted.text
    # The console says the certificate is not publicly trusted.
    web = browser(create_pages(world.store, settings, rate_limit=None))
    await log_in(web, world.operator)
    page = (await web.get("/console/domains/links.private.test")).text
    assert "private CA: not publicly trusted" in page, page[page.find("Issued") :][:300]
