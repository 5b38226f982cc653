"""POST /api/v1/links: tracked links, minted only on the caller's own domain."""

from __future__ import annotations

import base64

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


async def test_a_batch_is_answered_in_order_with_its_data(store: Store) -> None:
    from linkcert.tracking import TrackingKeys

    world, app = _app(store)
    binary = bytes(range(256))[1:]
    links = [
        {"url": f"https://shop.example.com/p/{n}", "data": f"msg={n};rcpt=é"} for n in range(500)
    ]
    links.append(
        {"url": "https://shop.example.com/bin", "data_base64": base64.b64encode(binary).decode()}
    )
    links.append({"url": "https://shop.example.com/none"})
    async with client(app) as http:
        answer = await http.post(
            "/api/v1/links/batch", json={"links": links}, headers=bearer(world.a_token)
        )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["domain"] == "links.alpha.test"
    assert len(body["links"]) == len(links)
    keys = TrackingKeys.of(tracking_key_from_secret(SECRET))
    for sent, minted in zip(links, body["links"], strict=True):
        token = minted["url"].rsplit("/c/", 1)[1]
        assert minted["open_url"] == f"https://links.alpha.test/o/{token}"
        link = read_token(keys, "links.alpha.test", token)
        assert link.destination == sent["url"]
        assert link.link_id is None and link.minted_at is not None
        if "data" in sent:
            assert link.data == sent["data"].encode()
        elif "data_base64" in sent:
            assert link.data == binary
        else:
            assert link.data == b""


async def test_a_batch_with_bad_links_names_each_and_mints_none(store: Store) -> None:
    world, app = _app(store)
    links = [{"url": f"https://shop.example.com/{n}"} for n in range(20)]
    links[3] = {"url": "javascript:alert(1)"}
    links[7] = {"url": "https://shop.example.com/", "data": "x" * 256}
    links[11] = {"url": "https://shop.example.com/", "data_base64": "%%%"}
    links[12] = {"url": "https://shop.example.com/", "data": "a", "data_base64": "YQ=="}
    async with client(app) as http:
        answer = await http.post(
            "/api/v1/links/batch", json={"links": links}, headers=bearer(world.a_token)
        )
        assert answer.status_code == 422
        problem = answer.json()
        assert problem["type"].endswith("/invalid-destination")
        assert [e["index"] for e in problem["errors"]] == [3, 7, 11, 12]
        assert "http:// or https://" in problem["errors"][0]["detail"]
        assert "255" in problem["errors"][1]["detail"]
        assert problem["errors_total"] == 4
        assert "links" not in problem
        too_many = await http.post(
            "/api/v1/links/batch",
            json={"links": [{"url": "https://a.example/"}] * 10_001},
            headers=bearer(world.a_token),
        )
        assert too_many.status_code == 422
        assert "10000" in too_many.text.replace(",", "")
        empty = await http.post(
            "/api/v1/links/batch", json={"links": []}, headers=bearer(world.a_token)
        )
        assert empty.status_code == 422
        elsewhere = await http.post(
            "/api/v1/links/batch",
            json={"domain": "links.beta.test", "links": [{"url": "https://a.example/"}]},
            headers=bearer(world.a_token),
        )
        assert elsewhere.status_code == 404


async def test_ten_thousand_links_fit_one_request(store: Store) -> None:
    world, app = _app(store)
    links = [
        {"url": f"https://shop.example.com/p/{n}?utm_campaign=spring", "data": f"rcpt={n:09d}"}
        for n in range(10_000)
    ]
    async with client(app) as http:
        answer = await http.post(
            "/api/v1/links/batch", json={"links": links}, headers=bearer(world.a_token)
        )
        assert answer.status_code == 201, answer.text[:500]
        assert len(answer.json()["links"]) == 10_000
        # Other requests keep their small body limit.
        big = await http.post(
            "/api/v1/links",
            json={"url": "https://a.example/", "data": "x" * 100_000},
            headers=bearer(world.a_token),
        )
        assert big.status_code == 413


async def test_a_single_link_carries_data_too(store: Store) -> None:
    world, app = _app(store)
    async with client(app) as http:
        answer = await http.post(
            "/api/v1/links",
            json={"url": "https://shop.example.com/", "data": "msg=1"},
            headers=bearer(world.a_token),
        )
    assert answer.status_code == 201, answer.text
    token = answer.json()["url"].rsplit("/", 1)[1]
    link = read_token(tracking_key_from_secret(SECRET), "links.alpha.test", token)
    assert (link.data, link.link_id) == (b"msg=1", answer.json()["link_id"])


async def test_no_links_on_a_name_not_yet_proven(store: Store) -> None:
    from linkcert.domains import create_account, set_tracking_domain
    from tests.api_support import POLICY, assert_problem

    world, app = _app(store)
    gamma = create_account(store, "gamma")
    set_tracking_domain(store, gamma.id, "links.gamma.test", POLICY)  # claimed, never proven
    async with client(app) as http:
        for path, body in (
            ("/api/v1/links", {"url": "https://a.example/", "domain": "links.gamma.test"}),
            (
                "/api/v1/links/batch",
                {"domain": "links.gamma.test", "links": [{"url": "https://a.example/"}]},
            ),
        ):
            answer = await http.post(path, json=body, headers=bearer(world.operator))
            problem = assert_problem(answer, 409, "domain-not-proven")
            assert "links.gamma.test" in problem["detail"]
