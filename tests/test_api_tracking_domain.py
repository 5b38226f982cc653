"""An account's link tracking domain over the API: save, read, detach, events, retry."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from linkcert.domains import Conflict, NotFound, domain_events, retry_now
from linkcert.states import FailureClass
from linkcert.store import Account, Domain, utcnow
from linkcert.web import create_app
from tests.api_support import SETTINGS, World, app_for, assert_problem, bearer, client


@pytest.fixture
def api(world: World) -> httpx.AsyncClient:
    return client(app_for(world))


def path(account_id: int, rest: str = "") -> str:
    return f"/api/v1/accounts/{account_id}/tracking-domain{rest}"


async def test_saving_answers_at_once_and_wakes_the_worker(
    api: httpx.AsyncClient, world: World
) -> None:
    response = await api.put(
        path(world.a_id), json={"domain": " Click.Alpha.TEST. "}, headers=bearer(world.a_token)
    )
    assert response.status_code == 202, response.text
    status = response.json()
    assert status["domain"] == "click.alpha.test" and status["account"] == "alpha"
    assert (status["dns_state"], status["cert_state"]) == ("pending", "none")
    assert status["dns_state_text"] == "Checking your DNS"
    assert status["next_attempt_at"] is not None and status["wanted"] is True
    assert world.wakes == [1]

    current = await api.get(path(world.a_id), headers=bearer(world.a_token))
    assert current.json()["domain"] == "click.alpha.test"
    # The domain it replaced is no longer renewed, and says why.
    assert [e["kind"] for e in domain_events(world.store, "links.alpha.test")][-1] == "replaced"


async def test_saving_the_same_domain_again_changes_nothing(
    api: httpx.AsyncClient, world: World
) -> None:
    before = domain_events(world.store, "links.alpha.test")
    response = await api.put(
        path(world.a_id), json={"domain": "LINKS.alpha.test"}, headers=bearer(world.a_token)
    )
    assert response.status_code == 200, response.text
    assert domain_events(world.store, "links.alpha.test") == before
    assert world.wakes == []


async def test_international_names_come_back_in_both_forms(
    api: httpx.AsyncClient, world: World
) -> None:
    response = await api.put(
        path(world.a_id), json={"domain": "liens.bücher.test"}, headers=bearer(world.operator)
    )
    assert response.status_code == 202, response.text
    assert response.json()["domain"] == "liens.xn--bcher-kva.test"
    assert response.json()["unicode_name"] == "liens.bücher.test"


INVALID_NAMES = [
    ("https://links.alpha.test/x", "looks_like_url"),
    ("", "empty"),
    ("links alpha.test", "contains_space"),
    ("*.alpha.test", "wildcard"),
    ("192.0.2.1", "ip_address"),
    ("co.uk", "public_suffix"),
    ("links.example.com", "reserved_name"),
    ("links.platform.test", "platform_domain"),
    ("a" * 64 + ".alpha.test", "label_too_long"),
]


async def test_invalid_names_carry_the_validators_code(
    api: httpx.AsyncClient, world: World
) -> None:
    for domain, code in INVALID_NAMES:
        response = await api.put(
            path(world.a_id), json={"domain": domain}, headers=bearer(world.a_token)
        )
        problem = assert_problem(response, 422, "invalid-domain")
        assert problem["code"] == code, domain
        assert problem["fix"]
    assert world.wakes == []


async def test_another_accounts_domain_is_only_a_claim(
    api: httpx.AsyncClient, world: World
) -> None:
    response = await api.put(
        path(world.a_id), json={"domain": "links.beta.test"}, headers=bearer(world.a_token)
    )
    assert response.status_code == 202, response.text
    body = response.json()
    # Alpha sees its own claim, with the records that would prove it, not beta's domain.
    assert (body["account"], body["dns_state"], body["cert_state"]) == ("alpha", "pending", "none")
    with world.store.session() as session:
        label = session.get(Account, world.a_id).dns_label  # type: ignore[union-attr]
    assert [r["zone"] for r in body["dns_records"]] == [
        f'_linkcert.links.beta.test. TXT "linkcert={label}"'
    ]
    owner = await api.get("/api/v1/domains/links.beta.test", headers=bearer(world.operator))
    assert owner.json()["account"] == "beta"


async def test_wrong_shapes_are_validation_errors(api: httpx.AsyncClient, world: World) -> None:
    shapes: list[object] = [
        {"domain": 5},
        {"domain": None},
        {"name": "links.alpha.test"},
        ["links.alpha.test"],
    ]
    for body in shapes:
        response = await api.put(path(world.a_id), json=body, headers=bearer(world.a_token))
        assert_problem(response, 422, "validation-error")


async def test_detaching_keeps_the_domain_but_stops_renewal(
    api: httpx.AsyncClient, world: World
) -> None:
    detached = await api.delete(path(world.a_id), headers=bearer(world.a_token))
    assert detached.status_code == 200, detached.text
    assert detached.json()["domain"] == "links.alpha.test"
    assert detached.json()["wanted"] is False

    gone = await api.get(path(world.a_id), headers=bearer(world.a_token))
    problem = assert_problem(gone, 404, "no-tracking-domain")
    assert "PUT" in problem["fix"]
    assert_problem(
        await api.delete(path(world.a_id), headers=bearer(world.a_token)), 404, "no-tracking-domain"
    )
    assert_problem(
        await api.post(path(world.a_id, "/retry"), headers=bearer(world.a_token)),
        404,
        "no-tracking-domain",
    )

    # The name stays the account's: it can still see it, and another account's save is only
    # a claim, which its DNS does not prove.
    kept = await api.get("/api/v1/domains/links.alpha.test", headers=bearer(world.a_token))
    assert kept.status_code == 200 and kept.json()["wanted"] is False
    claimed = await api.put(
        path(world.b_id), json={"domain": "links.alpha.test"}, headers=bearer(world.b_token)
    )
    assert claimed.status_code == 202 and claimed.json()["cert_state"] == "none"
    owner = await api.get("/api/v1/domains/links.alpha.test", headers=bearer(world.operator))
    assert owner.json()["account"] == "alpha"

    # Saving it again resumes it.
    again = await api.put(
        path(world.a_id), json={"domain": "links.alpha.test"}, headers=bearer(world.a_token)
    )
    assert again.status_code == 202 and again.json()["wanted"] is True
    kinds = [e["kind"] for e in domain_events(world.store, "links.alpha.test")]
    assert kinds == ["saved", "owner_proven", "detached", "saved", "saved"]


async def test_events_are_listed_oldest_first(api: httpx.AsyncClient, world: World) -> None:
    await api.post(path(world.a_id, "/retry"), headers=bearer(world.a_token))
    response = await api.get(path(world.a_id, "/events"), headers=bearer(world.a_token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["domain"] == "links.alpha.test"
    assert [e["kind"] for e in body["items"]] == ["saved", "owner_proven", "retry_requested"]
    latest = await api.get(path(world.a_id, "/events?limit=1"), headers=bearer(world.a_token))
    assert [e["kind"] for e in latest.json()["items"]] == ["retry_requested"]
    for bad in ("0", "1001", "x"):
        response = await api.get(
            path(world.a_id, f"/events?limit={bad}"), headers=bearer(world.a_token)
        )
        assert_problem(response, 422, "validation-error")


async def test_retry_makes_the_domain_due_now(api: httpx.AsyncClient, world: World) -> None:
    later = utcnow() + timedelta(hours=1)
    with world.store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == "links.alpha.test")).one()
        domain.next_attempt_at = later
    response = await api.post(path(world.a_id, "/retry"), headers=bearer(world.a_token))
    assert response.status_code == 202, response.text
    assert world.wakes == [1]
    with world.store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == "links.alpha.test")).one()
        assert domain.next_attempt_at is not None and domain.next_attempt_at < later


async def test_retry_waits_for_a_rate_limiting_ca(api: httpx.AsyncClient, world: World) -> None:
    until = utcnow() + timedelta(minutes=30)
    with world.store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == "links.alpha.test")).one()
        domain.failure_class = FailureClass.RATE_LIMITED
        domain.next_attempt_at = until
    response = await api.post(path(world.a_id, "/retry"), headers=bearer(world.a_token))
    problem = assert_problem(response, 409, "retry-too-early")
    assert problem["not_before"].startswith(f"{until:%Y-%m-%dT%H:%M}")
    assert world.wakes == []


def test_retry_refuses_unwanted_and_unknown_domains(world: World) -> None:
    with world.store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == "links.beta.test")).one()
        domain.wanted = False
    with pytest.raises(Conflict, match="save it as the link tracking domain again"):
        retry_now(world.store, "links.beta.test")
    with pytest.raises(NotFound):
        retry_now(world.store, "no.such.test")


async def test_unknown_account(api: httpx.AsyncClient, world: World) -> None:
    operator = bearer(world.operator)
    for method, rest in [("GET", ""), ("DELETE", ""), ("GET", "/events"), ("POST", "/retry")]:
        response = await api.request(method, path(999, rest), headers=operator)
        assert_problem(response, 404, "not-found")
    response = await api.put(path(999), json={"domain": "links.x.test"}, headers=operator)
    assert_problem(response, 404, "not-found")


async def test_unproven_claims_past_the_cap_are_refused_with_a_409(world: World) -> None:
    settings = SETTINGS.model_copy(update={"max_unproven_claims": 1})
    async with client(create_app(world.store, settings, rate_limit=None)) as api:
        first = await api.put(
            path(world.a_id), json={"domain": "one.other.test"}, headers=bearer(world.a_token)
        )
        assert first.status_code == 202, first.text
        again = await api.put(
            path(world.a_id), json={"domain": "two.other.test"}, headers=bearer(world.a_token)
        )
    problem = assert_problem(again, 409, "too-many-claims")
    assert "at most 1" in problem["detail"] and "expire" in problem["fix"]
