"""A certificate uploaded for a brand domain is installed exactly as one issued over ACME.

Both go through `install_certificate`: the domain's current certificate and state, the
announcement the edges listen for (PostgreSQL), the issued-certificates counter, the customer's
"secured" notification and the timeline event. The ACME side of the same function is exercised
end to end against Pebble in test_provision_e2e and test_lifecycle_e2e.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import select

from linkcert.brand import complete_with_upload, request_brand_domain
from linkcert.certificates import install_certificate
from linkcert.config import Settings
from linkcert.counters import CERTIFICATES_ISSUED
from linkcert.domains import create_account, domain_events
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.names import NamePolicy
from linkcert.notify.outbox import Notifier
from linkcert.store import Domain, Store
from linkcert.store.models import Notification
from linkcert.store.signals import CERTIFICATES, libpq_conninfo
from linkcert.uploads import check_upload, store_upload
from tests.certs_support import ThrowawayCA

POLICY = NamePolicy(allow_test_domains=True)
KEYS = MasterKeys.parse(generate_master_key("install"))
NOTIFIER = Notifier.from_settings(Settings(operator_email="ops@platform.test"))
BRAND = "links.brand.test"


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


def issued(renewal: bool) -> float:
    value: float = CERTIFICATES_ISSUED.labels("renewal" if renewal else "new")._value.get()
    return value


def test_an_uploaded_certificate_gets_every_side_effect_of_an_issued_one(
    store: Store, ca: ThrowawayCA
) -> None:
    shop = create_account(store, "brand-shop", ["owner@brand-shop.test"])
    request = request_brand_domain(store, shop.id, BRAND, "", POLICY)
    leaf = ca.issue(BRAND)
    checked = check_upload(leaf.chain_pem, leaf.key_pem, BRAND, private_roots=leaf.roots)
    before = issued(renewal=False)

    complete_with_upload(store, KEYS, request.id, checked, "ops", NOTIFIER)

    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == BRAND)).one()
        assert domain.cert_state == "active" and domain.problems == []
        certificate = domain.current_certificate
        assert certificate is not None and certificate.source == "upload"
        # The stored renewal plan, as for an issued certificate (the lifetime rule here).
        assert certificate.renew_at is not None
        assert certificate.not_before < certificate.renew_at < certificate.not_after
        kinds = session.scalars(
            select(Notification.kind).where(Notification.domain_name == BRAND)
        ).all()
    assert list(kinds) == ["secured"]
    assert issued(renewal=False) == before + 1
    assert [e["kind"] for e in domain_events(store, BRAND)][-1] == "certificate_uploaded"


def test_a_replacement_counts_as_a_renewal_and_does_not_tell_the_customer_again(
    store: Store, ca: ThrowawayCA
) -> None:
    shop = create_account(store, "brand-shop", ["owner@brand-shop.test"])
    request = request_brand_domain(store, shop.id, BRAND, "", POLICY)
    first = ca.issue(BRAND)
    complete_with_upload(
        store,
        KEYS,
        request.id,
        check_upload(first.chain_pem, first.key_pem, BRAND, private_roots=first.roots),
        "ops",
        NOTIFIER,
    )
    renewals = issued(renewal=True)
    second = ca.issue(BRAND)
    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == BRAND)).one()
        certificate = store_upload(
            session,
            KEYS,
            domain,
            check_upload(second.chain_pem, second.key_pem, BRAND, private_roots=second.roots),
        )
        install_certificate(
            session, domain, certificate, notifier=NOTIFIER, event="renewed", message="again"
        )
        assert domain.current_certificate_id == certificate.id
    assert issued(renewal=True) == renewals + 1
    with store.session() as session:
        count = len(
            session.scalars(select(Notification.id).where(Notification.domain_name == BRAND)).all()
        )
    assert count == 1


@pytest.mark.postgres
def test_on_postgresql_the_edges_hear_of_an_upload_at_once(
    postgres_url: str, ca: ThrowawayCA
) -> None:
    store = Store(postgres_url)
    store.migrate()
    shop = create_account(store, "brand-shop", ["owner@brand-shop.test"])
    request = request_brand_domain(store, shop.id, BRAND, "", POLICY)
    leaf = ca.issue(BRAND)
    checked = check_upload(leaf.chain_pem, leaf.key_pem, BRAND, private_roots=leaf.roots)
    with psycopg.connect(libpq_conninfo(store.url), autocommit=True) as listener:
        listener.execute(f'LISTEN "{CERTIFICATES}"')
        complete_with_upload(store, KEYS, request.id, checked, "ops", NOTIFIER)
        heard = [n.payload for n in listener.notifies(timeout=10, stop_after=1)]
    store.close()
    assert heard == [BRAND]
