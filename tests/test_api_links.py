"""POST /api/v1/links: tracked links, minted only on the caller's own domain."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import SecretStr

from linkcert.api import create_app
from linkcert.store import Store
from linkcert.tracking import read_token, tracking_key_from_secret
from tests.api_support import SETTINGS, World, bearer, client, make_world

SECRET = "s" * 40


def _app(store: Store) -> tuple[World, FastAPI]:
    world = make_world(store)
    settings = SETTINGS.model_copy(update={"tracking_key": SecretStr(SECRET)})
    return world, create_app(store, settings, rate_limit=None)


async def test_account_mints_links_on_its_own_domain(store: Store) -> None:
    world, app = _app(store)
    async with client(app) as http:
        answer = await http.post(
            "/api/v1/links",
            json={"url": "https://shop.example.com/sale"},
            headers=bearer(world.a_token),
        )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["domain"] == "links.alpha.test"
    assert body["url"].startswith("https://links.alpha.test/c/")
    token = body["url"].rsplit("/", 1)[1]
    link = read_token(tracking_key_from_secret(SECRET), "links.alpha.test", token)
    assert (link.link_id, link.destination) == (body["link_id"], "https://shop.example.com/sale")


async def test_no_links_on_another_accounts_domain(store: Store) -> None:
    world, app = _app(store)
    async with client(app) as http:
        answer = await http.post(
            "/api/v1/links",
            json={"url": "https://evil.example.net/", "domain": "links.beta.test"},
            headers=bearer(world.a_token),
        )
        assert answer.status_code == 404
        operator = await http.post(
            "/api/v1/links",
            json={"url": "https://shop.example.com/", "domain": "links.beta.test"},
            headers=bearer(world.operator),
        )
        assert operator.status_code == 201


async def test_bad_destinations_and_missing_auth(store: Store) -> None:
    world, app = _app(store)
    async with client(app) as http:
        for url in ("javascript:alert(1)", "/relative", "https://user:pw@x.example/", "x" * 3000):
            answer = await http.post(
                "/api/v1/links",
                json={"url": url},
                headers=bearer(world.a_token),
            )
            assert answer.status_code == 422, url
            assert answer.json()["type"].endswith("invalid-destination")
        assert (
            await http.post("/api/v1/links", json={"url": "https://a.example/"})
        ).status_code == 401
