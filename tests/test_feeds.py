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
from linkcert.store import Certificate, Domain, Store, utcnow
from linkcert.testbed.waiting import wait_for_async
from linkcert.tracking import Click as RecordedClick
from linkcert.uploads import check_upload, store_upload
from tests.certs_support import ThrowawayCA
from tests.ownership_support import prove

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
        prove(store, name)
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


# --- more names than preload_limit: names at start, certificates at their first handshake ----


async def test_above_the_preload_limit_only_names_are_loaded_then_each_on_demand(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA
) -> None:
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache, preload_limit=1)
    alpha = install(domains, keys, ca, ALPHA)
    beta = install(domains, keys, ca, BETA)
    result = feeds.sync_here()
    assert feeds.lazy and (result.loaded, result.failed) == (2, 0)
    assert cache.version(ALPHA) == alpha and cache.loaded_count == 0
    assert feeds.cursor() == max(alpha, beta)

    assert await feeds.load_certificate(ALPHA)
    context = cache.context_for(ALPHA)
    assert context is not None and context.version == alpha
    assert cache.loaded_count == 1 and not cache.is_loaded(BETA)

    # Renewed: the name's new version is known at the next pass, and the certificate is read
    # again at the next handshake, replacing the ready context.
    newer = install(domains, keys, ca, ALPHA)
    await feeds.sync()
    assert cache.version(ALPHA) == newer and not cache.is_loaded(ALPHA)
    assert await feeds.load_certificate(ALPHA)
    context = cache.context_for(ALPHA)
    assert context is not None and context.version == newer

    # Also when a worker announces it (refresh_domain).
    newest = install(domains, keys, ca, ALPHA)
    await feeds.refresh_domain(ALPHA)
    assert cache.version(ALPHA) == newest and not cache.is_loaded(ALPHA)

    # Deleted (here: no current certificate any more): the load finds nothing, and the name
    # is no longer served.
    with domains.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == BETA)).one()
        domain.current_certificate_id = None
    assert await feeds.load_certificate(BETA)
    assert BETA not in cache and cache.context_for(BETA) is None
    feeds.close()


async def test_a_worker_inherits_the_decision_and_follows_new_names(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA
) -> None:
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache, lazy=True)
    stop = asyncio.Event()
    follower = asyncio.ensure_future(feeds.keep_in_sync(stop, interval=0.02, full_every=3600))
    try:
        alpha = install(domains, keys, ca, ALPHA)
        await wait_for_async(lambda: cache.version(ALPHA) == alpha, "the new name")
        assert not cache.is_loaded(ALPHA)
    finally:
        stop.set()
        await asyncio.wait_for(follower, timeout=10)


async def test_a_stored_certificate_that_does_not_load_is_logged_once_not_fatal(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA, caplog: pytest.LogCaptureFixture
) -> None:
    alpha = install(domains, keys, ca, ALPHA)
    install(domains, MasterKeys.parse(generate_master_key("other")), ca, BETA)
    with domains.session() as session:
        session.get(Certificate, alpha).chain_pem = "not a certificate"  # type: ignore[union-attr]
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache, preload_limit=0)
    await feeds.sync()
    with caplog.at_level(logging.ERROR, logger="linkcert.feeds"):
        assert not await feeds.load_certificate(ALPHA)
        assert not await feeds.load_certificate(ALPHA)  # not read nor logged again
        assert not await feeds.load_certificate(BETA)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith(f"cannot serve the certificate of {ALPHA}: ")
    assert messages[1].startswith(f"cannot load the certificate of {BETA}: ")
    assert ALPHA in cache and BETA in cache  # still served by name: a fix is picked up
    fixed = install(domains, keys, ca, ALPHA)
    await feeds.refresh_domain(ALPHA)
    assert await feeds.load_certificate(ALPHA)
    assert cache.version(ALPHA) == fixed and cache.is_loaded(ALPHA)
    feeds.close()


async def test_the_full_pass_by_slices_finds_changes_and_removals(
    domains: Store, keys: MasterKeys, ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("linkcert.service.feeds._SLICE", 1)  # a slice per name
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache, preload_limit=0)
    alpha = install(domains, keys, ca, ALPHA)
    beta = install(domains, keys, ca, BETA)
    await feeds.sync()  # decides: names only
    assert feeds.lazy and cache.versions() == {ALPHA: (alpha, 0), BETA: (beta, 0)}
    assert (await feeds.sync()).loaded == 0  # nothing changed

    newer = install(domains, keys, ca, ALPHA)
    with domains.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == BETA)).one()
        assert domain.current_certificate is not None
        domain.current_certificate.revoked_at = utcnow()
    result = await feeds.sync()
    assert (result.loaded, result.removed) == (1, 1)
    assert cache.versions() == {ALPHA: (newer, 0)}

    # A name put while a pass is under way is not taken for one the store dropped.
    seen = cache.begin_comparison()
    cache.put_index(BETA, beta)
    assert cache.end_comparison(seen) == [ALPHA]


async def test_a_store_that_cannot_be_read_fails_the_load_with_one_line_a_minute(
    domains: Store,
    keys: MasterKeys,
    ca: ThrowawayCA,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(domains, keys, ca, ALPHA)
    install(domains, keys, ca, BETA)
    cache = CertificateCache()
    feeds = StoreFeeds(domains, keys, cache, preload_limit=0)
    await feeds.sync()

    def unreachable(name: str) -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(feeds, "_read_current", unreachable)
    with caplog.at_level(logging.WARNING, logger="linkcert.feeds"):
        assert not await feeds.load_certificate(ALPHA)
        assert not await feeds.load_certificate(BETA)
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot read the certificate of {ALPHA} from the store: connection refused"
    ]
    assert ALPHA in cache and not cache.is_loaded(ALPHA)  # still served once the store is back
    feeds.close()
