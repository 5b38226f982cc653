"""Brand link tracking domain requests in the store: the queue, its decisions, the migration."""

from __future__ import annotations

import logging

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from linkcert.brand import (
    RequestClosed,
    approve_brand_request,
    brand_request,
    complete_with_upload,
    list_brand_requests,
    notify_brand_request,
    reject_brand_request,
    request_brand_domain,
)
from linkcert.config import Settings
from linkcert.domains import (
    Conflict,
    NotFound,
    create_account,
    domain_events,
    domain_status,
    set_tracking_domain,
)
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.names import DomainNameError, NamePolicy
from linkcert.store import Domain, Store
from linkcert.store.db import alembic_config
from linkcert.store.models import Base, Delivery
from linkcert.uploads import check_upload
from tests.certs_support import ThrowawayCA
from tests.ownership_support import prove

POLICY = NamePolicy(allow_test_domains=True)
KEYS = MasterKeys.parse(generate_master_key("t"))


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


def test_the_migration_matches_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    columns = {c["name"] for c in inspect(store.engine).get_columns("brand_requests")}
    assert columns == {
        "id",
        "account_id",
        "domain",
        "note",
        "status",
        "created_at",
        "decided_at",
        "decided_by",
    }


def test_the_migration_goes_down_to_0002_and_up_again(store: Store) -> None:
    config = alembic_config(store.url)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    assert "brand_requests" not in inspect(store.engine).get_table_names()
    store.migrate()
    assert "brand_requests" in inspect(store.engine).get_table_names()


def test_a_request_waits_in_the_queue(store: Store) -> None:
    shop = create_account(store, "shop")
    view = request_brand_domain(store, shop.id, " Links.Brand.TEST. ", " spring ", POLICY)
    assert (view.domain, view.note, view.status, view.account) == (
        "links.brand.test",
        "spring",
        "requested",
        "shop",
    )
    assert [v.id for v in list_brand_requests(store)] == [view.id]
    assert list_brand_requests(store, status="approved") == []
    # Asking twice is refused while the first waits.
    with pytest.raises(Conflict, match="already requested"):
        request_brand_domain(store, shop.id, "links.brand.test", "", POLICY)


def test_names_are_validated_and_names_of_others_refused(store: Store) -> None:
    shop = create_account(store, "shop")
    other = create_account(store, "other")
    set_tracking_domain(store, other.id, "links.other.test", POLICY)
    set_tracking_domain(store, shop.id, "links.shop.test", POLICY)
    prove(store, "links.other.test")
    prove(store, "links.shop.test")
    with pytest.raises(DomainNameError):
        request_brand_domain(store, shop.id, "https://links.brand.test/x", "", POLICY)
    with pytest.raises(Conflict, match="another account"):
        request_brand_domain(store, shop.id, "links.other.test", "", POLICY)
    with pytest.raises(Conflict, match="already secured"):
        request_brand_domain(store, shop.id, "links.shop.test", "", POLICY)
    with pytest.raises(ValueError, match="at most"):
        request_brand_domain(store, shop.id, "links.brand.test", "x" * 1001, POLICY)


def test_approval_makes_a_brand_domain_due_now(store: Store) -> None:
    shop = create_account(store, "shop")
    view = request_brand_domain(store, shop.id, "links.brand.test", "", POLICY)
    approved = approve_brand_request(store, view.id, "operator token 1 (ops)")
    assert approved.status == "approved" and approved.decided_by == "operator token 1 (ops)"
    assert approved.decided_at is not None
    with store.session() as session:
        domain = session.query(Domain).filter_by(name="links.brand.test").one()
        assert (domain.kind, domain.wanted, domain.account_id) == ("brand", True, shop.id)
        assert domain.next_attempt_at is not None
    assert [e["kind"] for e in domain_events(store, "links.brand.test")] == ["brand_approved"]
    with pytest.raises(RequestClosed, match="approved"):
        approve_brand_request(store, view.id, "x")
    with pytest.raises(RequestClosed):
        reject_brand_request(store, view.id, "x")


def test_rejection_closes_the_request(store: Store) -> None:
    shop = create_account(store, "shop")
    view = request_brand_domain(store, shop.id, "links.brand.test", "", POLICY)
    assert reject_brand_request(store, view.id, "ops").status == "rejected"
    with pytest.raises(RequestClosed):
        approve_brand_request(store, view.id, "ops")
    with pytest.raises(NotFound):
        reject_brand_request(store, 9999, "ops")
    # A rejected name may be asked for again.
    assert request_brand_domain(store, shop.id, "links.brand.test", "", POLICY).is_open


def test_upload_secures_the_domain_at_once(store: Store, ca: ThrowawayCA) -> None:
    shop = create_account(store, "shop")
    view = request_brand_domain(store, shop.id, "links.brand.test", "", POLICY)
    leaf = ca.issue("links.brand.test")
    checked = check_upload(
        leaf.chain_pem, leaf.key_pem, "links.brand.test", private_roots=leaf.roots
    )
    done = complete_with_upload(store, KEYS, view.id, checked, "ops")
    assert done.status == "uploaded"
    status = domain_status(store, "links.brand.test")
    assert status.cert_state == "active"
    assert status.issuer == "Throwaway Brand CA Issuing"
    assert status.not_after == checked.info.not_after
    events = domain_events(store, "links.brand.test")
    assert events[-1]["kind"] == "certificate_uploaded"
    assert "uploaded by ops" in events[-1]["message"]
    # A replacement before expiry goes to the same request.
    renewed = ca.issue("links.brand.test")
    again = check_upload(
        renewed.chain_pem, renewed.key_pem, "links.brand.test", private_roots=renewed.roots
    )
    complete_with_upload(store, KEYS, view.id, again, "ops")
    assert domain_status(store, "links.brand.test").not_after == again.info.not_after


def test_an_account_sees_only_its_own_requests(store: Store) -> None:
    shop = create_account(store, "shop")
    other = create_account(store, "other")
    mine = request_brand_domain(store, shop.id, "links.mine.test", "", POLICY)
    request_brand_domain(store, other.id, "links.theirs.test", "", POLICY)
    assert [v.id for v in list_brand_requests(store, account_id=shop.id)] == [mine.id]
    assert brand_request(store, mine.id, shop.id).domain == "links.mine.test"
    with pytest.raises(NotFound):
        brand_request(store, mine.id, other.id)


def test_a_new_request_notifies_the_deliverability_team(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    shop = create_account(store, "shop")
    view = request_brand_domain(store, shop.id, "links.brand.test", "", POLICY)
    told = Settings(
        deliverability_email="deliverability@platform.test",
        smtp_host="127.0.0.1",
        smtp_from="alerts@platform.test",
    )
    notify_brand_request(store, told, view)
    with store.session() as session:
        targets = session.scalars(select(Delivery.target)).all()
    assert "deliverability@platform.test" in targets
    with caplog.at_level(logging.INFO, logger="linkcert.notify"):
        notify_brand_request(store, Settings(), view)
    assert "no deliverability_email" in caplog.records[-1].getMessage()
