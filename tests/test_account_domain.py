"""Saving an account's link tracking domain and retrying it: the use cases the API and the
account page both call, and the one way they refuse (`Refused`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from linkcert import account_domain
from linkcert.domains import remove_tracking_domain
from linkcert.ownership import ClaimPolicy
from linkcert.refusals import Refused
from linkcert.states import FailureClass
from linkcert.store import Domain, utcnow
from tests.api_support import POLICY, World

CLAIMS = ClaimPolicy()


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def refused(call: object, *args: object) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_saving_wakes_the_worker_once_and_again_changes_nothing(world: World) -> None:
    wake = Wakes()
    saved = account_domain.save(
        world.store, world.a_id, "Links.New-Alpha.test", POLICY, CLAIMS, wake
    )
    assert saved.changed and wake.count == 1
    assert saved.status.domain == "links.new-alpha.test"
    assert saved.status.dns_label  # the account's own records can be shown
    again = account_domain.save(
        world.store, world.a_id, "links.new-alpha.test", POLICY, CLAIMS, wake
    )
    assert not again.changed and wake.count == 1
    assert again.status == account_domain.current_status(world.store, world.a_id)


def test_a_save_is_refused_in_words_with_a_fix(world: World) -> None:
    invalid = refused(
        account_domain.save, world.store, world.a_id, "https://links.x.test/", POLICY, CLAIMS
    )
    assert (invalid.status, invalid.slug, invalid.code) == (422, "invalid-domain", "looks_like_url")
    assert invalid.fix and "links.example.com" in invalid.fix

    unknown = refused(account_domain.save, world.store, 999, "links.x.test", POLICY, CLAIMS)
    assert (unknown.status, unknown.slug, unknown.message) == (
        404,
        "not-found",
        "There is no account 999.",
    )

    one = ClaimPolicy(max_open=1)
    account_domain.save(world.store, world.a_id, "one.other.test", POLICY, one)
    capped = refused(account_domain.save, world.store, world.a_id, "two.other.test", POLICY, one)
    assert (capped.status, capped.slug) == (409, "too-many-claims")
    assert "at most 1" in capped.message and capped.fix and "expire" in capped.fix


def test_retry_makes_the_domain_due_and_wakes_the_worker(world: World) -> None:
    later = utcnow() + timedelta(hours=1)
    with world.store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == "links.alpha.test")).one()
        domain.next_attempt_at = later
    wake = Wakes()
    status = account_domain.retry(world.store, world.a_id, wake)
    assert wake.count == 1
    assert status.next_attempt_at is not None and status.next_attempt_at < later


def test_retry_is_refused_while_the_ca_asks_to_wait(world: World) -> None:
    until = utcnow() + timedelta(minutes=30)
    with world.store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == "links.alpha.test")).one()
        domain.failure_class = FailureClass.RATE_LIMITED
        domain.next_attempt_at = until
    wake = Wakes()
    early = refused(account_domain.retry, world.store, world.a_id, wake)
    assert (early.status, early.slug, wake.count) == (409, "retry-too-early", 0)
    assert early.extra["not_before"].startswith(f"{until:%Y-%m-%dT%H:%M}")


def test_retry_without_a_domain_or_an_account_is_refused(world: World) -> None:
    with world.store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == "links.beta.test")).one()
        domain.wanted = False  # no longer secured, yet still the account's domain
    detached = refused(account_domain.retry, world.store, world.b_id)
    assert (detached.status, detached.slug) == (409, "domain-detached")
    assert detached.fix and "Save it again" in detached.fix

    remove_tracking_domain(world.store, world.a_id)
    gone = refused(account_domain.retry, world.store, world.a_id)
    assert (gone.status, gone.slug) == (404, "no-tracking-domain")
    assert "no link tracking domain" in gone.message
    assert refused(account_domain.retry, world.store, 999).slug == "not-found"
