"""The store-to-edge sync (service/feeds.py): what the edge serves follows what the store says.

A certificate is stored the way an upload stores it (key encrypted under the master key and
bound to its domain) and made the domain's current one; the feeds then load it into a real
CertificateCache, replace it when a newer one becomes current, and drop it when it is revoked,
expired or no longer current.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from linkcert.domains import create_account, set_tracking_domain
from linkcert.edge.certs import CertificateCache
from linkcert.events.store import event_json, list_events
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.names import NamePolicy
from linkcert.service.feeds import StoreFeeds
from linkcert.store import Domain, Store, utcnow
from linkcert.testbed.waiting import wait_for_async
from linkcert.tracking import Click as RecordedClick
from linkcert.uploads import check_upload, store_upload
from tests.certs_support import ThrowawayCA

POLICY = NamePolicy(allow_test_domains=True)
ALPHA = "links.alpha.test"
BETA = "links.beta.test"


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


@pytest.fixture
def keys() -> MasterKeys:
    return MasterKeys.parse(generate_master_key("feeds"))


@pytest.fixture
def domains(store: Store) -> Store:
    for account, name in (("alpha", ALPHA), ("beta", BETA)):
        create_account(store, account)
        set_tracking_domain(store, account, name, POLICY)
    return store


def install(store: Store, keys: MasterKeys, ca: ThrowawayCA, name: str) -> int:
    """Store a certificate for `name` and make it current; its id (the cache's version)."""
    leaf = ca.issue(name)
    checked = check_upload(leaf.chain_pem, leaf.key_pem, name, private_roots=leaf.roots)
    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == name)).one()
        certificate = store_upload(session, keys, domain, checked)
        domain.current_certificate_id = certificate.id
        return certificate.id


async def test_a_full_sync_loads_what_is_current_and_drops_what_is_not(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA
) -> None:
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache)
    alpha = install(domains, keys, ca, ALPHA)
    beta = install(domains, keys, ca, BETA)

    result = await feeds.sync()
    assert (result.loaded, result.removed, result.failed) == (2, 0, 0)
    assert cache.version(ALPHA) == alpha and cache.version(BETA) == beta
    assert cache.context_for(ALPHA) is not None
    assert feeds.cursor() == max(alpha, beta)

    # Nothing changed: nothing is loaded again.
    assert (await feeds.sync()).loaded == 0

    # A newer certificate replaces the old one; a revoked one is no longer served.
    newer = install(domains, keys, ca, ALPHA)
    with domains.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == BETA)).one()
        assert domain.current_certificate is not None
        domain.current_certificate.revoked_at = utcnow()
    result = await feeds.sync()
    assert (result.loaded, result.removed) == (1, 1)
    assert cache.version(ALPHA) == newer
    assert BETA not in cache


async def test_an_expired_certificate_is_dropped(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA
) -> None:
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache)
    alpha = install(domains, keys, ca, ALPHA)
    feeds.sync_here()  # the edge pool's parent loads this way, without an event loop
    assert cache.version(ALPHA) == alpha
    with domains.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == ALPHA)).one()
        assert domain.current_certificate is not None
        domain.current_certificate.not_after = utcnow() - timedelta(seconds=1)
    assert feeds.sync_here().removed == 1
    assert ALPHA not in cache


async def test_a_key_under_another_master_key_is_skipped_and_logged(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA, caplog: pytest.LogCaptureFixture
) -> None:
    install(domains, keys, ca, ALPHA)
    install(domains, MasterKeys.parse(generate_master_key("other")), ca, BETA)
    cache = CertificateCache()
    with caplog.at_level(logging.ERROR, logger="linkcert.feeds"):
        result = await StoreFeeds(domains, keys, cache).sync()
    assert result.loaded == 1
    assert ALPHA in cache and BETA not in cache
    assert f"cannot load the certificate of {BETA}" in caplog.text


async def test_refresh_domain_loads_and_drops_one_domain(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA
) -> None:
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache)
    alpha = install(domains, keys, ca, ALPHA)
    await feeds.refresh_domain(ALPHA)
    assert cache.version(ALPHA) == alpha
    with domains.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == ALPHA)).one()
        domain.current_certificate_id = None
    await feeds.refresh_domain(ALPHA)
    assert ALPHA not in cache


async def test_keep_in_sync_follows_new_certificates_until_stopped(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA
) -> None:
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache)
    stop = asyncio.Event()
    follower = asyncio.ensure_future(feeds.keep_in_sync(stop, interval=0.02, full_every=3600))
    try:
        alpha = install(domains, keys, ca, ALPHA)
        await wait_for_async(lambda: cache.version(ALPHA) == alpha, "the first certificate")
        newer = install(domains, keys, ca, ALPHA)
        await wait_for_async(lambda: cache.version(ALPHA) == newer, "the newer certificate")
    finally:
        stop.set()
        await asyncio.wait_for(follower, timeout=10)


async def test_clicks_are_written_to_the_store_as_events(domains: Store, keys: MasterKeys) -> None:
    feeds = StoreFeeds(domains, keys, CertificateCache())
    now = utcnow()
    await feeds.save_clicks(
        [
            RecordedClick(ALPHA, 7, "click", now),
            RecordedClick(ALPHA, None, "open", now),
        ]
    )
    await feeds.save_clicks([])
    with domains.session() as session:
        events = [event_json(row) for row in list_events(session, 0, 10)]
    assert [(e["domain"], e["kind"], e["link_id"]) for e in events] == [
        (ALPHA, "click", 7),
        (ALPHA, "open", None),
    ]
