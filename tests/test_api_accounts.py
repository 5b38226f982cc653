"""The API's accounts, /me and tokens endpoints, on both engines."""

from __future__ import annotations

import httpx
import pytest

from tests.api_support import World, app_for, assert_problem, bearer, client


@pytest.fixture
def api(world: World) -> httpx.AsyncClient:
    return client(app_for(world))


async def test_me_says_who_the_token_is(api: httpx.AsyncClient, world: World) -> None:
    operator = (await api.get("/api/v1/me", headers=bearer(world.operator))).json()
    assert operator["kind"] == "operator" and operator["account"] is None
    assert operator["token"]["name"] == "operator"

    alpha = (await api.get("/api/v1/me", headers=bearer(world.a_token))).json()
    assert alpha["kind"] == "account"
    assert alpha["account"]["id"] == world.a_id
    assert alpha["account"]["tracking_domain"] == "links.alpha.test"
    assert alpha["token"]["name"] == "alpha app"


async def test_operator_creates_and_reads_accounts(api: httpx.AsyncClient, world: World) -> None:
    created = await api.post(
        "/api/v1/accounts",
        json={"name": "  gamma ", "contact_emails": ["ops@gamma.test"]},
        headers=bearer(world.operator),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "gamma" and body["contact_emails"] == ["ops@gamma.test"]
    assert body["tracking_domain"] is None and body["created_at"].endswith("Z")

    fetched = await api.get(f"/api/v1/accounts/{body['id']}", headers=bearer(world.operator))
    assert fetched.json() == body

    own = await api.get(f"/api/v1/accounts/{world.a_id}", headers=bearer(world.a_token))
    assert own.status_code == 200 and own.json()["name"] == "alpha"


async def test_accounts_are_listed_a_page_at_a_time(api: httpx.AsyncClient, world: World) -> None:
    for name in ("c", "d", "e"):
        await api.post("/api/v1/accounts", json={"name": name}, headers=bearer(world.operator))
    names: list[str] = []
    url: str | None = "/api/v1/accounts?limit=2"
    pages = 0
    while url is not None:
        page = (await api.get(url, headers=bearer(world.operator))).json()
        names += [a["name"] for a in page["items"]]
        url = page["next"]
        pages += 1
    assert names == ["alpha", "beta", "c", "d", "e"]
    assert pages == 3


BAD_ACCOUNTS: list[tuple[object, str, str | None]] = [
    ({}, "validation-error", "body.name"),
    ({"name": ""}, "validation-error", "body.name"),
    ({"name": 5}, "validation-error", "body.name"),
    ({"name": "x", "contact_emails": "ops@x.test"}, "validation-error", "body.contact_emails"),
    ({"name": "x", "emails": []}, "validation-error", "body.emails"),
    ({"name": "x", "contact_emails": ["not an address"]}, "invalid-account", None),
]


async def test_bad_accounts_are_refused(api: httpx.AsyncClient, world: World) -> None:
    for body, slug, location in BAD_ACCOUNTS:
        response = await api.post("/api/v1/accounts", json=body, headers=bearer(world.operator))
        problem = assert_problem(response, 422, slug)
        if location is not None:
            assert location in [e["location"] for e in problem["errors"]], body


async def test_a_taken_account_name_is_a_conflict(api: httpx.AsyncClient, world: World) -> None:
    response = await api.post(
        "/api/v1/accounts", json={"name": "alpha"}, headers=bearer(world.operator)
    )
    problem = assert_problem(response, 409, "conflict")
    assert "alpha" in problem["detail"]


async def test_unknown_and_impossible_account_ids(api: httpx.AsyncClient, world: World) -> None:
    operator = bearer(world.operator)
    assert_problem(await api.get("/api/v1/accounts/999", headers=operator), 404, "not-found")
    for bad in ("0", "-1", "abc", "99999999999"):
        response = await api.get(f"/api/v1/accounts/{bad}", headers=operator)
        assert_problem(response, 422, "validation-error")


async def test_operator_makes_and_revokes_tokens(api: httpx.AsyncClient, world: World) -> None:
    operator = bearer(world.operator)
    made = await api.post(
        "/api/v1/tokens", json={"name": "shop sync", "account_id": world.a_id}, headers=operator
    )
    assert made.status_code == 201, made.text
    token = made.json()
    assert token["token"].startswith("lct_") and token["prefix"] == token["token"][:8]
    assert token["account_id"] == world.a_id and token["operator"] is False

    me = await api.get("/api/v1/me", headers=bearer(token["token"]))
    assert me.json()["account"]["id"] == world.a_id

    revoked = await api.delete(f"/api/v1/tokens/{token['id']}", headers=operator)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert "token" not in revoked.json()
    problem = assert_problem(
        await api.get("/api/v1/me", headers=bearer(token["token"])), 401, "invalid-token"
    )
    assert problem["code"] == "revoked"

    ops = await api.post(
        "/api/v1/tokens", json={"name": "ops 2", "operator": True}, headers=operator
    )
    assert ops.status_code == 201 and ops.json()["operator"] is True
    assert (await api.get("/api/v1/accounts", headers=bearer(ops.json()["token"]))).is_success


BAD_TOKEN_REQUESTS: list[tuple[object, str]] = [
    ({"name": "x"}, "validation-error"),
    ({"name": "x", "account_id": 1, "operator": True}, "validation-error"),
    ({"name": "x", "operator": "yes"}, "validation-error"),
    ({"name": "x", "account_id": "1"}, "validation-error"),
    ({"name": "", "operator": True}, "validation-error"),
    ({"name": "x", "account_id": 999}, "unknown-account"),
]


async def test_bad_token_requests_are_refused(api: httpx.AsyncClient, world: World) -> None:
    for body, slug in BAD_TOKEN_REQUESTS:
        response = await api.post("/api/v1/tokens", json=body, headers=bearer(world.operator))
        assert_problem(response, 422, slug)


async def test_revoking_an_unknown_token(api: httpx.AsyncClient, world: World) -> None:
    response = await api.delete("/api/v1/tokens/999", headers=bearer(world.operator))
    assert_problem(response, 404, "not-found")


async def test_operators_give_an_account_its_own_origins(
    api: httpx.AsyncClient, world: World
) -> None:
    url = f"/api/v1/accounts/{world.a_id}"
    origins = ["http://tracker-eu.internal:8080", "HTTPS://Tracker-EU2.internal"]
    changed = await api.patch(url, json={"upstreams": origins}, headers=bearer(world.operator))
    assert changed.status_code == 200, changed.text
    expected = ["http://tracker-eu.internal:8080", "https://tracker-eu2.internal:443"]
    assert changed.json()["upstreams"] == expected
    assert (await api.get(url, headers=bearer(world.operator))).json()["upstreams"] == expected

    # The account itself neither sets nor sees them: they are the platform's addresses.
    refused = await api.patch(url, json={"upstreams": []}, headers=bearer(world.a_token))
    assert_problem(refused, 403, "operator-only")
    own = await api.get(url, headers=bearer(world.a_token))
    assert own.json()["upstreams"] is None
    me = (await api.get("/api/v1/me", headers=bearer(world.a_token))).json()
    assert me["account"]["upstreams"] is None

    for bad in (["ftp://x"], ["http://x:1/path"], ["http://user:pw@x"], "http://x"):
        rejected = await api.patch(url, json={"upstreams": bad}, headers=bearer(world.operator))
        assert rejected.status_code == 422, bad
    unchanged = await api.get(url, headers=bearer(world.operator))
    assert unchanged.json()["upstreams"] == expected

    cleared = await api.patch(url, json={"upstreams": None}, headers=bearer(world.operator))
    assert cleared.json()["upstreams"] is None
    missing = await api.patch(
        "/api/v1/accounts/999999", json={"upstreams": None}, headers=bearer(world.operator)
    )
    assert_problem(missing, 404, "not-found")
