"""What the API tests share: a small installation with an operator and two accounts.

Account A ("alpha") has the tracking domain links.alpha.test, account B ("beta") has
links.beta.test; each has its own token. Requests go through httpx's ASGI transport, so the
whole application runs (middleware, handlers, thread pool) without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from linkcert.auth import create_token
from linkcert.config import Settings
from linkcert.domains import create_account, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.store import Store
from linkcert.web import create_app

SETTINGS = Settings(allow_test_domains=True, platform_domains=("platform.test",))
POLICY = NamePolicy(allow_test_domains=True)
PROBLEM_JSON = "application/problem+json"
PROBLEMS = "https://linkcert.dev/problems/"


@dataclass
class World:
    store: Store
    operator: str
    a_id: int
    a_token: str
    b_id: int
    b_token: str
    wakes: list[int] = field(default_factory=list)


def make_world(store: Store) -> World:
    alpha = create_account(store, "alpha", ["ops@alpha.test"])
    beta = create_account(store, "beta")
    set_tracking_domain(store, alpha.id, "links.alpha.test", POLICY)
    set_tracking_domain(store, beta.id, "links.beta.test", POLICY)
    operator, _ = create_token(store, None, "operator")
    a_token, _ = create_token(store, alpha.id, "alpha app")
    b_token, _ = create_token(store, beta.id, "beta app")
    return World(store, operator, alpha.id, a_token, beta.id, b_token)


def app_for(world: World, **options: Any) -> FastAPI:
    options.setdefault("rate_limit", None)
    return create_app(world.store, SETTINGS, wake=lambda: world.wakes.append(1), **options)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """Check that `response` is a problem document of the given status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEMS + slug, body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body
