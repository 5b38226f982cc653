"""What the page tests share: a browser-like client that logs in and posts forms with the CSRF
token the page gave it."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from linkcert.config import Settings
from linkcert.keys import generate_master_key
from linkcert.web import create_app
from tests.api_support import World

BASE = "http://127.0.0.1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

#: The settings the console's tests run with: test names allowed, one traffic target.
CONSOLE_SETTINGS = Settings(
    allow_test_domains=True,
    cname_targets=("edge.platform.test",),
    master_key=generate_master_key("t"),  # type: ignore[arg-type]
)


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    """Log in as a browser does: fetch the form, post it. Returns the redirect."""
    form = await client.get("/login")
    response = await client.post(
        "/login", data={"token": token, "csrf_token": csrf_of(form.text)}, headers={"Origin": BASE}
    )
    assert response.status_code == 303, response.text
    return response


async def page_csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


SCRIPT = {"X-Requested-With": "fetch", "Origin": BASE}


async def operator(world: World, settings: Settings = CONSOLE_SETTINGS) -> httpx.AsyncClient:
    """A browser logged in to the console as the world's operator."""
    app = create_app(world.store, settings, wake=lambda: world.wakes.append(1), rate_limit=None)
    web = browser(app)
    await log_in(web, world.operator)
    return web
