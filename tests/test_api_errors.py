"""How the API fails: authentication, bad bodies, limits, crashes, and what it documents.

This is the HTTP plumbing, the same whatever the database, so it runs on SQLite only; the
endpoints' behaviour with data is tested on both engines in the other test_api_* modules.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from linkcert.api import (
    API_PREFIX,
    ApiContextDep,
    CurrentPrincipal,
    ProblemError,
    RateLimit,
    create_app,
    require_account_access,
)
from linkcert.store import Store
from tests.api_support import SETTINGS, World, app_for, assert_problem, bearer, client, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = Store(f"sqlite:///{tmp_path / 'api.sqlite3'}")
    store.migrate()
    try:
        yield make_world(store)
    finally:
        store.close()


@pytest.fixture
def api(world: World) -> httpx.AsyncClient:
    return client(app_for(world))


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "slug", "code"),
    [
        ({}, "unauthenticated", None),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "unauthenticated", None),
        ({"Authorization": "Bearer"}, "unauthenticated", None),
        ({"Authorization": "Bearer not-a-token"}, "invalid-token", "malformed"),
        ({"Authorization": "Bearer lct_" + "A" * 43}, "invalid-token", "unknown"),
    ],
)
async def test_requests_without_a_valid_token_get_401(
    api: httpx.AsyncClient, headers: dict[str, str], slug: str, code: str | None
) -> None:
    response = await api.get("/api/v1/me", headers=headers)
    problem = assert_problem(response, 401, slug)
    assert problem.get("code") == code
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_scheme_is_case_insensitive(api: httpx.AsyncClient, world: World) -> None:
    response = await api.get("/api/v1/me", headers={"Authorization": f"bearer {world.operator}"})
    assert response.status_code == 200


# --- bodies ---------------------------------------------------------------------------------


async def test_malformed_json_is_400(api: httpx.AsyncClient, world: World) -> None:
    response = await api.put(
        f"/api/v1/accounts/{world.a_id}/tracking-domain",
        content=b'{"domain": ',
        headers={**bearer(world.a_token), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


async def test_a_body_that_is_not_json_is_415(api: httpx.AsyncClient, world: World) -> None:
    response = await api.put(
        f"/api/v1/accounts/{world.a_id}/tracking-domain",
        content=b"domain=links.alpha.test",
        headers={**bearer(world.a_token), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "unsupported-media-type")


async def test_a_missing_body_is_422(api: httpx.AsyncClient, world: World) -> None:
    response = await api.put(
        f"/api/v1/accounts/{world.a_id}/tracking-domain", headers=bearer(world.a_token)
    )
    problem = assert_problem(response, 422, "validation-error")
    assert "JSON" in problem["fix"]


async def test_oversize_bodies_are_413(api: httpx.AsyncClient, world: World) -> None:
    path = f"/api/v1/accounts/{world.a_id}/tracking-domain"
    big = b'{"domain": "' + b"a" * 70_000 + b'"}'
    declared = await api.put(
        path, content=big, headers={**bearer(world.a_token), "Content-Type": "application/json"}
    )
    assert_problem(declared, 413, "request-too-large")

    async def chunks(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    streamed = await api.put(
        path,
        content=chunks(big),
        headers={**bearer(world.a_token), "Content-Type": "application/json"},
    )
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413, "request-too-large")

    # A streamed body under the limit is passed on whole.
    small = b'{"domain": "streamed.alpha.test"}'
    accepted = await api.put(
        path,
        content=chunks(small),
        headers={**bearer(world.a_token), "Content-Type": "application/json"},
    )
    assert accepted.status_code == 202, accepted.text


async def test_the_body_limit_is_configurable(world: World) -> None:
    api = client(app_for(world, max_body_bytes=16))
    response = await api.post(
        "/api/v1/accounts", json={"name": "seventeen bytes+"}, headers=bearer(world.operator)
    )
    problem = assert_problem(response, 413, "request-too-large")
    assert "16 bytes" in problem["detail"]


# --- routing --------------------------------------------------------------------------------


async def test_unknown_paths_and_methods(api: httpx.AsyncClient, world: World) -> None:
    assert_problem(
        await api.get("/api/v1/nothing", headers=bearer(world.operator)), 404, "not-found"
    )
    wrong = await api.patch("/api/v1/me", headers=bearer(world.operator))
    problem = assert_problem(wrong, 405, "method-not-allowed")
    assert wrong.headers["allow"] == "GET" and "GET" in problem["fix"]


# --- rate limit -----------------------------------------------------------------------------


async def test_each_token_has_its_own_rate_limit(world: World) -> None:
    now = [1000.0]
    api = client(app_for(world, rate_limit=RateLimit(per_second=1, burst=2), clock=lambda: now[0]))
    alpha = bearer(world.a_token)
    assert (await api.get("/api/v1/me", headers=alpha)).status_code == 200
    assert (await api.get("/api/v1/me", headers=alpha)).status_code == 200
    refused = await api.get("/api/v1/me", headers=alpha)
    assert_problem(refused, 429, "rate-limited")
    assert refused.headers["retry-after"] == "1"
    # Another token is not held back by alpha's burst.
    assert (await api.get("/api/v1/me", headers=bearer(world.b_token))).status_code == 200
    now[0] += 1.0
    assert (await api.get("/api/v1/me", headers=alpha)).status_code == 200
    assert (await api.get("/api/v1/me", headers=alpha)).status_code == 429


# --- a router added later, as the integrator of tracked links would --------------------------


class LinkIn(BaseModel):
    account_id: int
    destination: str


def links_router() -> APIRouter:
    router = APIRouter()

    @router.post("/example-links", status_code=201)
    def create_link(
        body: LinkIn, who: CurrentPrincipal, context: ApiContextDep
    ) -> dict[str, object]:
        require_account_access(who, body.account_id)
        if not body.destination.startswith("https://"):
            raise ProblemError(422, "validation-error", "destination must be an https URL")
        return {"account_id": body.account_id, "store": context.store.dialect}

    @router.get("/boom")
    def boom(who: CurrentPrincipal) -> None:
        raise RuntimeError("database password is hunter2")

    return router


@pytest.fixture
def extended(world: World) -> FastAPI:
    app = app_for(world)
    app.include_router(links_router(), prefix=API_PREFIX)
    return app


async def test_an_added_router_shares_auth_and_errors(extended: FastAPI, world: World) -> None:
    api = client(extended)
    body = {"account_id": world.a_id, "destination": "https://shop.test/"}
    made = await api.post("/api/v1/example-links", json=body, headers=bearer(world.a_token))
    assert made.status_code == 201 and made.json()["account_id"] == world.a_id
    assert_problem(await api.post("/api/v1/example-links", json=body), 401, "unauthenticated")
    foreign = await api.post("/api/v1/example-links", json=body, headers=bearer(world.b_token))
    assert_problem(foreign, 404, "not-found")
    bad = {**body, "destination": "ftp://x"}
    assert_problem(
        await api.post("/api/v1/example-links", json=bad, headers=bearer(world.a_token)),
        422,
        "validation-error",
    )
    schema = (await api.get("/openapi.json")).json()
    assert "/api/v1/example-links" in schema["paths"]


async def test_crashes_answer_an_opaque_500_and_are_logged(
    extended: FastAPI, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    api = client(extended)
    with caplog.at_level(logging.ERROR, logger="linkcert.api"):
        response = await api.get("/api/v1/boom", headers=bearer(world.operator))
    problem = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    error_id = problem["error_id"]
    assert error_id in problem["detail"]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "hunter2" in str(logged[0].exc_info[1])


# --- documentation --------------------------------------------------------------------------

EXPECTED = {
    "/api/v1/me": {"get"},
    "/api/v1/accounts": {"get", "post"},
    "/api/v1/accounts/{account_id}": {"get", "patch"},
    "/api/v1/accounts/{account_id}/tracking-domain": {"get", "put", "delete"},
    "/api/v1/accounts/{account_id}/tracking-domain/events": {"get"},
    "/api/v1/accounts/{account_id}/tracking-domain/retry": {"post"},
    "/api/v1/domains": {"get"},
    "/api/v1/domains/{name}": {"get", "delete"},
    "/api/v1/tokens": {"post"},
    "/api/v1/tokens/{token_id}": {"delete"},
    "/api/v1/links": {"post"},
    "/api/v1/links/batch": {"post"},
    "/api/v1/events": {"get"},
    "/api/v1/accounts/{account_id}/webhooks": {"get", "post"},
    "/api/v1/accounts/{account_id}/webhooks/{webhook_id}": {"delete"},
    "/api/v1/deliveries": {"get"},
    "/api/v1/dns-check": {"post"},
    "/api/v1/brand-requests": {"get", "post"},
    "/api/v1/brand-requests/{request_id}": {"get"},
    "/api/v1/brand-requests/{request_id}/approve": {"post"},
    "/api/v1/brand-requests/{request_id}/reject": {"post"},
    "/api/v1/brand-requests/{request_id}/upload": {"post"},
}


async def test_the_openapi_document_lists_every_endpoint(api: httpx.AsyncClient) -> None:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {path: set(ops) for path, ops in schema["paths"].items()} == EXPECTED
    assert "ApiToken" in schema["components"]["securitySchemes"]
    missing = schema["paths"]["/api/v1/domains/{name}"]["get"]["responses"]["404"]
    assert list(missing["content"]) == ["application/problem+json"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") or operation.get("description"), (method, path)
            assert operation.get("security"), (method, path)

    docs = await api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_wake_runs_on_the_event_loop_from_sync_and_async_endpoints(world: World) -> None:
    loops: list[bool] = []

    def wake() -> None:
        try:
            asyncio.get_running_loop()
            loops.append(True)
        except RuntimeError:
            loops.append(False)

    app = create_app(world.store, SETTINGS, wake=wake, rate_limit=None)
    router = APIRouter()

    @router.post("/nudge", status_code=202)
    async def nudge(who: CurrentPrincipal, context: ApiContextDep) -> None:
        context.wake_worker()

    app.include_router(router, prefix=API_PREFIX)
    api = client(app)
    path = f"/api/v1/accounts/{world.a_id}/tracking-domain/retry"
    assert (await api.post(path, headers=bearer(world.a_token))).status_code == 202
    assert (await api.post("/api/v1/nudge", headers=bearer(world.a_token))).status_code == 202
    assert loops == [True, True]


async def test_a_failing_wake_does_not_fail_the_request(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("worker gone")

    api = client(create_app(world.store, SETTINGS, wake=broken, rate_limit=None))
    path = f"/api/v1/accounts/{world.a_id}/tracking-domain/retry"
    with caplog.at_level(logging.ERROR, logger="linkcert.api"):
        response = await api.post(path, headers=bearer(world.a_token))
    assert response.status_code == 202
    assert "could not wake the worker" in caplog.text


async def test_docs_load_nothing_from_another_origin(world: World) -> None:
    api = client(app_for(world))
    docs = await api.get("/docs")
    assert docs.status_code == 200
    page = docs.text
    # Every src and href is a path on this origin: no CDN, no third party.
    references = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert references and all(
        ref.startswith("/") and not ref.startswith("//") for ref in references
    )
    assert "cdn" not in page.lower() and "http://" not in page and "https://" not in page
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self'" in csp
    for ref in references:
        asset = await api.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 100
    # The bundle's other files, and anything else, are not served.
    assert (await api.get("/docs/assets/index.html")).status_code == 404
    assert (await api.get("/docs/assets/..%2F__init__.py")).status_code == 404


async def test_docs_can_be_turned_off(world: World) -> None:
    settings = SETTINGS.model_copy(update={"api_docs": False})
    api = client(create_app(world.store, settings, rate_limit=None))
    assert (await api.get("/docs")).status_code == 404
    assert (await api.get("/docs/assets/swagger-ui-bundle.js")).status_code == 404
    assert (await api.get("/openapi.json")).status_code == 200  # the description stays
