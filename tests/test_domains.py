import pytest
from sqlalchemy import select

from linkcert.domains import (
    Conflict,
    NotFound,
    create_account,
    domain_events,
    domain_status,
    set_tracking_domain,
)
from linkcert.names import DomainNameError, NamePolicy
from linkcert.store import Domain, Store

POLICY = NamePolicy(allow_test_domains=True)


def test_saving_a_domain_queues_it(store: Store) -> None:
    create_account(store, "shop", ["ops@shop.test"])
    saved = set_tracking_domain(store, "shop", " Links.Shop.TEST. ", POLICY)
    assert saved.name == "links.shop.test"
    status = domain_status(store, "LINKS.shop.test")
    assert status.account == "shop"
    assert (status.dns_state, status.cert_state) == ("pending", "none")
    assert [e["kind"] for e in domain_events(store, "links.shop.test")] == ["saved"]
    with store.session() as session:
        domain = session.scalars(select(Domain)).one()
        assert domain.next_attempt_at is not None


def test_another_accounts_domain_is_refused(store: Store) -> None:
    create_account(store, "a")
    create_account(store, "b")
    set_tracking_domain(store, "a", "links.a.test", POLICY)
    with pytest.raises(Conflict, match="another account"):
        set_tracking_domain(store, "b", "links.a.test", POLICY)


def test_changing_domain_stops_renewing_the_old_one(store: Store) -> None:
    create_account(store, "a")
    set_tracking_domain(store, "a", "links.a.test", POLICY)
    set_tracking_domain(store, "a", "click.a.test", POLICY)
    old = domain_status(store, "links.a.test")
    new = domain_status(store, "click.a.test")
    assert not old.wanted and new.wanted
    assert [e["kind"] for e in domain_events(store, "links.a.test")] == ["saved", "replaced"]


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
