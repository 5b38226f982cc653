"""/domains over the API: the operator's list with filters, and one domain by name."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from linkcert.store import Domain
from tests.api_support import World, app_for, assert_problem, bearer, client


@pytest.fixture
def world(world: World) -> World:
    """The shared world, with beta's domain already secured."""
    store = world.store
    with store.session() as session:
        beta = session.scalars(select(Domain).where(Domain.name == "links.beta.test")).one()
        beta.dns_state, beta.cert_state = "ok", "active"
    return world


@pytest.fixture
def api(world: World) -> httpx.AsyncClient:
    return client(app_for(world))


async def names(api: httpx.AsyncClient, world: World, query: str = "") -> list[str]:
    response = await api.get(f"/api/v1/domains{query}", headers=bearer(world.operator))
    assert response.status_code == 200, response.text
    return [d["domain"] for d in response.json()["items"]]


async def test_operator_lists_domains_by_state(api: httpx.AsyncClient, world: World) -> None:
    assert await names(api, world) == ["links.alpha.test", "links.beta.test"]
    assert await names(api, world, "?dns_state=pending") == ["links.alpha.test"]
    assert await names(api, world, "?cert_state=active") == ["links.beta.test"]
    assert await names(api, world, "?dns_state=ok&cert_state=active") == ["links.beta.test"]
    assert await names(api, world, "?dns_state=ok&cert_state=none") == []


async def test_domains_are_listed_a_page_at_a_time(api: httpx.AsyncClient, world: World) -> None:
    first = await api.get("/api/v1/domains?limit=1", headers=bearer(world.operator))
    page = first.json()
    assert [d["domain"] for d in page["items"]] == ["links.alpha.test"]
    assert page["next"].startswith("/api/v1/domains?limit=1&cursor=")
    second = (await api.get(page["next"], headers=bearer(world.operator))).json()
    # The last page says so: the next row is read to know, no count is taken.
    assert second == {"items": second["items"], "next": None}
    assert [d["domain"] for d in second["items"]] == ["links.beta.test"]
    # Clients of the earlier form (`after=` a name) still page.
    older = await api.get("/api/v1/domains?after=links.alpha.test", headers=bearer(world.operator))
    assert [d["domain"] for d in older.json()["items"]] == ["links.beta.test"]


async def test_bad_filters_are_validation_errors(api: httpx.AsyncClient, world: World) -> None:
    queries = ["?dns_state=fine", "?cert_state=ACTIVE", "?limit=0", "?limit=5000"]
    for query in [*queries, "?after=" + "a" * 300]:
        response = await api.get(f"/api/v1/domains{query}", headers=bearer(world.operator))
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"][0]["location"].startswith("query."), query


async def test_one_domain_by_name_in_any_form(api: httpx.AsyncClient, world: World) -> None:
    for name in ("links.beta.test", "LINKS.Beta.test."):
        response = await api.get(f"/api/v1/domains/{name}", headers=bearer(world.operator))
        assert response.status_code == 200, response.text
        assert response.json()["domain"] == "links.beta.test"
        assert response.json()["cert_state_text"] == "Secured"
    own = await api.get("/api/v1/domains/links.beta.test", headers=bearer(world.b_token))
    assert own.status_code == 200 and own.json()["account"] == "beta"


async def test_unknown_domains(api: httpx.AsyncClient, world: World) -> None:
    for name in ("nothing.here.test", "not a name", "x" * 1000):
        response = await api.get(f"/api/v1/domains/{name}", headers=bearer(world.operator))
        assert_problem(response, 404, "not-found")
