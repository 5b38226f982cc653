"""Ownership without a CA: platform names, the upgrade of existing names, link epochs."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text

from linkcert.config import ConfigError, Settings
from linkcert.domains import (
    NotFound,
    NotProven,
    create_account,
    delete_domain,
    domain_status,
    domain_status_for,
    remove_tracking_domain,
    retry_now,
    set_tracking_domain,
)
from linkcert.keys import generate_master_key
from linkcert.links import BatchItem, create_link, create_links
from linkcert.names import DomainNameError, NamePolicy, platform_names
from linkcert.ownership import proof_records
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Account, Base, Domain, DomainClaim, Store, utcnow
from linkcert.store.db import alembic_config
from linkcert.tracking import read_token
from tests.ownership_support import prove

KEY = b"k" * 32
SETTINGS = Settings(
    cname_targets=("track.mailer.test",),
    allow_test_domains=True,
    tracking_key="t" * 48,  # type: ignore[arg-type]
)


@pytest.mark.parametrize(
    "name",
    [
        "track.mailer.test",  # the CNAME target itself
        "Track.Mailer.TEST.",
        "abc123.track.mailer.test",  # an account's own target
        "mailer.test",  # the target's registrable domain
        "links.mailer.test",  # anything under it
    ],
)
def test_the_platforms_names_are_never_claimable(store: Store, name: str) -> None:
    create_account(store, "shop")
    with pytest.raises(DomainNameError) as refused:
        set_tracking_domain(store, "shop", name, NamePolicy.from_settings(SETTINGS))
    assert refused.value.code == "platform_domain"
    assert "platform's own domains" in refused.value.message
    with store.session() as session:
        assert session.scalars(select(Domain)).all() == []


def test_platform_names_come_from_the_targets_and_the_setting() -> None:
    settings = Settings(cname_targets=("edge.mail.example.co.uk",), platform_domains=("mail.io",))
    assert platform_names(settings) == ("mail.io", "edge.mail.example.co.uk", "example.co.uk")


def test_the_worker_will_not_start_without_knowing_the_platforms_names(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        edge_addresses=("192.0.2.10",),  # apex names only: no target to learn the names from
        master_key=generate_master_key("t"),  # type: ignore[arg-type]
        tracking_key="t" * 48,  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError) as refused:
        Runtime(settings, Roles(api=False, edge=False))
    message = str(refused.value)
    assert "\n" not in message and "platform_domains (LINKCERT_PLATFORM_DOMAINS)" in message
    allowed = settings.model_copy(update={"platform_domains": ("mailer.example",)})
    Runtime(allowed, Roles(api=False, edge=False))  # starts with the setting


def test_records_name_the_account_not_the_platform() -> None:
    records = proof_records(("track.mailer.test",), (), "links.shop.test", "k3xq7a2m")
    assert [r.zone_line() for r in records] == [
        "links.shop.test. CNAME k3xq7a2m.track.mailer.test.",
        '_linkcert.links.shop.test. TXT "linkcert=k3xq7a2m"',
    ]
    apex = proof_records((), ("192.0.2.10", "2001:db8::1"), "shop.test", "k3xq7a2m")
    assert [(r.type, r.value) for r in apex] == [
        ("A", "192.0.2.10"),
        ("AAAA", "2001:db8::1"),
        ("TXT", '"linkcert=k3xq7a2m"'),
    ]


def test_account_labels_are_dns_labels_unguessable_and_distinct(store: Store) -> None:
    labels = {create_account(store, f"shop{i}").dns_label for i in range(20)}
    assert len(labels) == 20
    assert all(re.fullmatch(r"[a-z2-7]{16}", label) for label in labels)


def test_links_only_on_proven_names_in_their_epoch(store: Store) -> None:
    shop = create_account(store, "shop").id
    set_tracking_domain(store, "shop", "links.shop.test", NamePolicy(allow_test_domains=True))
    with pytest.raises(NotProven, match="not proven"):
        create_link(store, KEY, "links.shop.test", "https://shop.example/", account_id=shop)
    with pytest.raises(NotProven):
        create_links(store, KEY, "links.shop.test", [BatchItem("https://shop.example/")])
    prove(store, "links.shop.test")
    first = create_link(store, KEY, "links.shop.test", "https://shop.example/", account_id=shop)
    assert read_token(KEY, "links.shop.test", first.url.rsplit("/", 1)[1]).epoch == 0
    delete_domain(store, "links.shop.test")
    with pytest.raises(NotProven):
        create_link(store, KEY, "links.shop.test", "https://shop.example/")
    with store.session() as session:
        domain = session.scalars(select(Domain)).one()
        assert domain.link_epoch == 1
        # What the worker's delete step does once nothing is left to revoke.
        domain.delete_requested, domain.deleted_at = False, utcnow()
    # Saved again and proven again: links are minted in the new epoch.
    set_tracking_domain(store, "shop", "links.shop.test", NamePolicy(allow_test_domains=True))
    prove(store, "links.shop.test")
    again = create_link(store, KEY, "links.shop.test", "https://shop.example/", account_id=shop)
    assert read_token(KEY, "links.shop.test", again.url.rsplit("/", 1)[1]).epoch == 1
    [token] = create_links(store, KEY, "links.shop.test", [BatchItem("https://x.example/")]).tokens
    assert read_token(KEY, "links.shop.test", token).epoch == 1
    assert domain_status(store, "links.shop.test").epoch == 1


def test_withdrawing_a_claim_leaves_the_owner_alone(store: Store) -> None:
    policy = NamePolicy(allow_test_domains=True)
    create_account(store, "owner")
    claimant = create_account(store, "claimant").id
    set_tracking_domain(store, "owner", "links.owner.test", policy)
    prove(store, "links.owner.test")
    set_tracking_domain(store, "claimant", "links.owner.test", policy)
    withdrawn = remove_tracking_domain(store, "claimant")
    assert withdrawn.cert_state == "none"
    owner = domain_status(store, "links.owner.test")
    assert owner.account == "owner" and owner.wanted
    with store.session() as session:
        assert session.scalars(select(DomainClaim)).all() == []
    with pytest.raises(NotFound):  # nothing ties the name to the claimant any more
        domain_status_for(store, "links.owner.test", claimant)


def test_the_upgrade_keeps_verified_names_and_turns_the_rest_into_claims(store: Store) -> None:
    config = alembic_config(store.url)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0014")
    now = utcnow()
    with store.engine.begin() as connection:
        for account_id in (1, 2, 3):
            connection.execute(
                text(
                    "INSERT INTO accounts (id, name, contact_emails, created_at) "
                    "VALUES (:id, :name, '[]', :at)"
                ),
                {"id": account_id, "name": f"a{account_id}", "at": now},
            )
        rows = [
            (1, "verified.shop.test", 1, "customer", "ok"),
            (2, "saved.shop.test", 2, "customer", "points_elsewhere"),
            (3, "brand.shop.test", 3, "brand", "pending"),
        ]
        for domain_id, name, account_id, kind, dns_state in rows:
            connection.execute(
                text(
                    "INSERT INTO domains (id, name, unicode_name, registrable, account_id, kind, "
                    "wanted, dns_state, cert_state, problems, attempts, delete_requested, "
                    "created_at, updated_at) VALUES (:id, :name, :name, 'shop.test', :account, "
                    ":kind, true, :dns, 'none', '[]', 0, false, :at, :at)"
                ),
                {
                    "id": domain_id,
                    "name": name,
                    "account": account_id,
                    "kind": kind,
                    "dns": dns_state,
                    "at": now,
                },
            )
    store.migrate()
    with store.session() as session:
        domains = {d.name: d for d in session.scalars(select(Domain))}
        assert (domains["verified.shop.test"].account_id, domains["verified.shop.test"].proof) == (
            1,
            "legacy",
        )
        assert domains["saved.shop.test"].account_id is None
        [claim] = session.scalars(select(DomainClaim)).all()
        assert (claim.account_id, claim.domain_id) == (2, domains["saved.shop.test"].id)
        assert claim.expires_at - now >= timedelta(hours=71)
        assert domains["brand.shop.test"].proof == "operator"
        labels = session.scalars(select(Account.dns_label)).all()
        assert len(set(labels)) == 3 and all(labels)
        assert {d.link_epoch for d in domains.values()} == {0}  # links sent before still verify
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    touched = [d for d in differences if re.search(r"domain_claims|dns_label|link_epoch", repr(d))]
    assert touched == []


def test_a_claimants_retry_checks_its_claim_but_never_hurries_the_owners_ca_wait(
    store: Store,
) -> None:
    policy = NamePolicy(allow_test_domains=True)
    create_account(store, "owner")
    claimant = create_account(store, "claimant").id
    set_tracking_domain(store, "owner", "links.owner.test", policy)
    prove(store, "links.owner.test")
    later = utcnow() + timedelta(hours=1)
    with store.session() as session:
        domain = session.scalars(select(Domain)).one()
        domain.failure_class, domain.next_attempt_at = "challenge_failed", later
    set_tracking_domain(store, "claimant", "links.owner.test", policy)
    status = retry_now(store, "links.owner.test", claimant)
    assert status.account == "claimant" and status.cert_state == "none"
    with store.session() as session:
        assert session.scalars(select(Domain.next_attempt_at)).one() == later
        session.scalars(select(Domain)).one().failure_class = "dns_not_ready"
    retry_now(store, "links.owner.test", claimant)
    with store.session() as session:
        due = session.scalars(select(Domain.next_attempt_at)).one()
    assert due is not None and due <= utcnow()
