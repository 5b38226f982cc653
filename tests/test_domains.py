from datetime import timedelta

import pytest
from sqlalchemy import select

from linkcert.domains import (
    Conflict,
    NotFound,
    TooManyClaims,
    create_account,
    domain_events,
    domain_status,
    domain_status_for,
    find_account,
    set_tracking_domain,
)
from linkcert.names import DomainNameError, NamePolicy
from linkcert.ownership import ClaimPolicy
from linkcert.store import Domain, DomainClaim, Store, utcnow
from tests.ownership_support import prove


def saved_account(store: Store, name: str) -> int:
    with store.session() as session:
        return find_account(session, name).id


POLICY = NamePolicy(allow_test_domains=True)


def test_saving_a_domain_queues_it(store: Store) -> None:
    create_account(store, "shop", ["ops@shop.test"])
    saved = set_tracking_domain(store, "shop", " Links.Shop.TEST. ", POLICY)
    assert saved.name == "links.shop.test"
    # A claim: the name is nobody's until DNS names the account.
    assert domain_status(store, "LINKS.shop.test").account is None
    status = domain_status_for(store, "LINKS.shop.test", saved_account(store, "shop"))
    assert status.account == "shop" and status.wanted
    assert (status.dns_state, status.cert_state) == ("pending", "none")
    assert [e["kind"] for e in domain_events(store, "links.shop.test")] == ["saved"]
    with store.session() as session:
        domain = session.scalars(select(Domain)).one()
        assert domain.next_attempt_at is not None


def test_claims_of_several_accounts_coexist_until_dns_names_one(store: Store) -> None:
    a = create_account(store, "a").id
    b = create_account(store, "b").id
    set_tracking_domain(store, "a", "links.a.test", POLICY)
    set_tracking_domain(store, "b", "links.a.test", POLICY)  # no 409: only a claim
    prove(store, "links.a.test", "b")
    assert domain_status(store, "links.a.test").account == "b"
    lost = domain_status_for(store, "links.a.test", a)
    assert lost.dns_state == "claimed_elsewhere" and lost.cert_state == "none"
    assert "names another account" in lost.problems[0]["message"]
    assert domain_status_for(store, "links.a.test", b).dns_state == "pending"


def test_unproven_claims_are_bounded_and_expire(store: Store) -> None:
    create_account(store, "a")
    claims = ClaimPolicy(lifetime=timedelta(hours=1), max_open=2)
    set_tracking_domain(store, "a", "one.a.test", POLICY, claims)
    set_tracking_domain(store, "a", "two.a.test", POLICY, claims)
    set_tracking_domain(store, "a", "two.a.test", POLICY, claims)  # renewing one is no new one
    with pytest.raises(TooManyClaims, match="at most 2"):
        set_tracking_domain(store, "a", "three.a.test", POLICY, claims)
    with store.session() as session:
        for claim in session.scalars(select(DomainClaim)):
            claim.expires_at = utcnow() - timedelta(seconds=1)
    set_tracking_domain(store, "a", "three.a.test", POLICY, claims)
    status = domain_status_for(store, "two.a.test", saved_account(store, "a"))
    assert status.dns_state == "not_proven" and status.problems[0]["code"] == "claim_expired"


def test_changing_domain_stops_renewing_the_old_one(store: Store) -> None:
    create_account(store, "a")
    set_tracking_domain(store, "a", "links.a.test", POLICY)
    prove(store, "links.a.test")
    set_tracking_domain(store, "a", "click.a.test", POLICY)
    old = domain_status(store, "links.a.test")
    new = domain_status(store, "click.a.test")
    assert not old.wanted and new.wanted
    assert [e["kind"] for e in domain_events(store, "links.a.test")] == [
        "saved",
        "owner_proven",
        "replaced",
    ]


def test_bad_input(store: Store) -> None:
    create_account(store, "a")
    with pytest.raises(DomainNameError):
        set_tracking_domain(store, "a", "https://links.a.test/", NamePolicy())
    with pytest.raises(NotFound):
        set_tracking_domain(store, "nobody", "links.a.test", POLICY)
    with pytest.raises(Conflict):
        create_account(store, "a")
    with pytest.raises(ValueError):
        create_account(store, "x", ["not an email"])
