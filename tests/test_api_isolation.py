"""Tenant isolation, endpoint by endpoint.

An account token must not learn whether another account's resources exist: it gets the same
404 for account B's resources as for ones that don't exist at all, and B's data is unchanged
afterwards. Operator-only collections answer 403 to account tokens.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from linkcert.domains import account_summary, domain_events, domain_status
from tests.api_support import World, app_for, assert_problem, bearer, client

MISSING_ACCOUNT = 424242


@pytest.fixture
def api(world: World) -> httpx.AsyncClient:
    return client(app_for(world))


def account_endpoints(account_id: int) -> list[tuple[str, str, Any]]:
    base = f"/api/v1/accounts/{account_id}"
    return [
        ("GET", base, None),
        ("GET", f"{base}/tracking-domain", None),
        ("PUT", f"{base}/tracking-domain", {"domain": "grab.beta.test"}),
        ("GET", f"{base}/tracking-domain/events", None),
        ("POST", f"{base}/tracking-domain/retry", None),
        ("DELETE", f"{base}/tracking-domain", None),  # last: it detaches the domain
    ]


OPERATOR_ONLY: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/accounts", None),
    ("POST", "/api/v1/accounts", {"name": "sneaky"}),
    ("POST", "/api/v1/tokens", {"name": "sneaky", "operator": True}),
    ("POST", "/api/v1/tokens", {"name": "sneaky", "account_id": 2}),
    ("DELETE", "/api/v1/tokens/1", None),
]


def snapshot(world: World) -> tuple[Any, ...]:
    return (
        account_summary(world.store, world.b_id),
        domain_status(world.store, "links.beta.test"),
        domain_events(world.store, "links.beta.test"),
    )


def without_ids(problem: dict[str, Any], *ids: str) -> dict[str, Any]:
    """The problem with the ids it names blanked, to compare two 404s."""
    detail = problem["detail"]
    for value in ids:
        detail = detail.replace(value, "ID")
    return {**problem, "detail": detail, "fix": (problem.get("fix") or "").replace(ids[0], "ID")}


async def test_another_accounts_resources_look_missing(
    api: httpx.AsyncClient, world: World
) -> None:
    before = snapshot(world)
    own = account_endpoints(world.b_id)
    missing = account_endpoints(MISSING_ACCOUNT)
    for (method, path, body), (_, missing_path, _) in zip(own, missing, strict=True):
        foreign = await api.request(method, path, json=body, headers=bearer(world.a_token))
        nowhere = await api.request(method, missing_path, json=body, headers=bearer(world.a_token))
        foreign_problem = assert_problem(foreign, 404, "not-found")
        nowhere_problem = assert_problem(nowhere, 404, "not-found")
        assert without_ids(foreign_problem, str(world.b_id)) == without_ids(
            nowhere_problem, str(MISSING_ACCOUNT)
        ), (method, path)
    assert snapshot(world) == before
    assert world.wakes == []


async def test_the_owner_reaches_the_same_endpoints(api: httpx.AsyncClient, world: World) -> None:
    # The positive control for the test above: B's own token gets through every one.
    for method, path, body in account_endpoints(world.b_id):
        response = await api.request(method, path, json=body, headers=bearer(world.b_token))
        assert response.is_success, (method, path, response.text)


async def test_another_accounts_domain_looks_missing(api: httpx.AsyncClient, world: World) -> None:
    foreign = await api.get("/api/v1/domains/links.beta.test", headers=bearer(world.a_token))
    nowhere = await api.get("/api/v1/domains/links.gamma.test", headers=bearer(world.a_token))
    foreign_problem = assert_problem(foreign, 404, "not-found")
    nowhere_problem = assert_problem(nowhere, 404, "not-found")
    assert foreign_problem["detail"].replace("beta", "X") == nowhere_problem["detail"].replace(
        "gamma", "X"
    )
    own = await api.get("/api/v1/domains/links.alpha.test", headers=bearer(world.a_token))
    assert own.status_code == 200


async def test_account_tokens_cannot_use_operator_endpoints(
    api: httpx.AsyncClient, world: World
) -> None:
    for method, path, body in OPERATOR_ONLY:
        response = await api.request(method, path, json=body, headers=bearer(world.a_token))
        problem = assert_problem(response, 403, "operator-only")
        assert "operator" in problem["fix"]
    assert snapshot(world)[0].name == "beta"
    # The operator can (last, since it revokes a token).
    for method, path, body in OPERATOR_ONLY:
        allowed = await api.request(method, path, json=body, headers=bearer(world.operator))
        assert allowed.is_success, (method, path, allowed.text)


async def test_me_shows_only_the_tokens_own_account(api: httpx.AsyncClient, world: World) -> None:
    me = (await api.get("/api/v1/me", headers=bearer(world.a_token))).json()
    assert me["account"]["id"] == world.a_id
    assert "beta" not in str(me)


async def test_revoked_tokens_reach_nothing(api: httpx.AsyncClient, world: World) -> None:
    revoked = await api.delete("/api/v1/tokens/2", headers=bearer(world.operator))
    assert revoked.json()["name"] == "alpha app"
    every = [*account_endpoints(world.a_id), ("GET", "/api/v1/me", None), *OPERATOR_ONLY]
    for method, path, body in every:
        response = await api.request(method, path, json=body, headers=bearer(world.a_token))
        problem = assert_problem(response, 401, "invalid-token")
        assert problem["code"] == "revoked", (method, path)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
