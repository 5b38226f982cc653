"""The certificate lifecycle against a real CA: renewal with the edge handing over, deletion.

Pebble issues 24-second certificates here, so real renewals happen within the test.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from linkcert.domains import (
    create_account,
    delete_domain,
    domain_events,
    domain_status,
    set_tracking_domain,
)
from linkcert.links import create_link
from linkcert.names import NamePolicy
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Certificate, Domain, Order, Store
from linkcert.testbed.waiting import wait_for_async
from tests.ari_support import RenewalInfoFront
from tests.e2e_support import (
    Platform,
    https_get,
    served_serial,
    start_platform,
    wait_until_secured,
)

POLICY = NamePolicy(allow_test_domains=True)
ROLES = Roles(api=False)
LIFETIME = 24


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    world = start_platform(tmp_path_factory.mktemp("pebble"), certificate_validity_seconds=LIFETIME)
    yield world
    world.pebble.stop()
    world.dns.stop()


class Handshakes(threading.Thread):
    """Handshakes in a loop until stopped, recording failures and the serials served."""

    def __init__(self, port: int, name: str, root: str) -> None:
        super().__init__(daemon=True)
        self.port, self.name, self.root = port, name, root
        self.serials: list[int] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        for _ in range(100_000):  # bounded; stopped long before
            if self.stop.is_set():
                return
            try:
                self.serials.append(served_serial(self.port, self.name, self.root))
            except (OSError, ssl.SSLError) as exc:
                self.failures.append(repr(exc))
            self.stop.wait(0.02)


async def start(platform: Platform, tmp_path: Path, **settings: object) -> tuple[Runtime, Store]:
    db_url = f"sqlite:///{tmp_path}/linkcert.sqlite3"
    store = Store(db_url)
    runtime = Runtime(platform.settings(db_url, tmp_path, **settings), ROLES, store=store)
    await runtime.start()
    return runtime, store


async def test_renewal_hands_over_with_no_failed_handshake(
    platform: Platform, tmp_path: Path
) -> None:
    runtime, store = await start(platform, tmp_path)
    domain = "links.renewing.test"
    platform.point(domain)
    root = platform.pebble.root_pem()
    try:
        create_account(store, "renewing")
        set_tracking_domain(store, "renewing", domain, POLICY)
        runtime.wake()
        await wait_until_secured(store, domain)
        await wait_for_async(lambda: domain in runtime.cache)
        assert runtime.edge is not None and runtime.edge.https_port
        with store.session() as session:
            first = session.scalars(select(Certificate)).one()
            assert first.renew_at is not None
            # Renewal is planned from the certificate's own dates: half of a short lifetime.
            lifetime = first.not_after - first.not_before
            assert first.renew_at <= first.not_after - lifetime / 2
        watcher = Handshakes(runtime.edge.https_port, domain, root)
        watcher.start()
        try:
            await wait_for_async(lambda: len(_certificates(store)) >= 2, timeout=LIFETIME * 2)
            second = max(_certificates(store), key=lambda c: c.id)
            await wait_for_async(lambda: int(second.serial, 16) in watcher.serials, timeout=10)
        finally:
            watcher.stop.set()
            await asyncio.to_thread(watcher.join)
        assert watcher.failures == []
        assert int(first.serial, 16) in watcher.serials
        kinds = [e["kind"] for e in domain_events(store, domain)]
        assert "renewed" in kinds
        assert domain_status(store, domain).cert_state == "active"
    finally:
        await runtime.aclose()
    store.close()


def _certificates(store: Store) -> list[Certificate]:
    with store.session() as session:
        return list(session.scalars(select(Certificate)))


async def test_delete_revokes_and_erases_keys(platform: Platform, tmp_path: Path) -> None:
    runtime, store = await start(platform, tmp_path)
    domain = "links.leaving.test"
    platform.point(domain)
    try:
        create_account(store, "leaving")
        set_tracking_domain(store, "leaving", domain, POLICY)
        runtime.wake()
        await wait_until_secured(store, domain)
        cert = _certificates(store)[0]
        delete_domain(store, domain)
        runtime.wake()
        await wait_for_async(lambda: domain_status(store, domain).cert_state == "revoked")
        await wait_for_async(lambda: domain not in runtime.cache, timeout=5)
    finally:
        await runtime.aclose()
    status = platform.pebble.cert_status(cert.serial)
    assert "revoked" in str(status).lower()
    with store.session() as session:
        assert all(c.key_encrypted is None for c in session.scalars(select(Certificate)))
        assert all(o.key_encrypted is None for o in session.scalars(select(Order)))
    store.close()


async def test_changed_domain_keeps_serving_old_links(platform: Platform, tmp_path: Path) -> None:
    runtime, store = await start(platform, tmp_path)
    old, new = "links.before.test", "click.before.test"
    platform.point(old)
    platform.point(new)
    root = platform.pebble.root_pem()
    try:
        create_account(store, "before")
        set_tracking_domain(store, "before", old, POLICY)
        runtime.wake()
        await wait_until_secured(store, old)
        link = create_link(store, runtime.tracking_key, old, "https://before.example.org/")
        set_tracking_domain(store, "before", new, POLICY)
        runtime.wake()
        await wait_until_secured(store, new)
        await wait_for_async(lambda: old in runtime.cache and new in runtime.cache)
        assert runtime.edge is not None and runtime.edge.https_port
        path = link.url.split(old, 1)[1]
        status, headers, _ = await asyncio.to_thread(
            https_get, runtime.edge.https_port, old, path, root
        )
        assert status == 302 and headers["location"] == "https://before.example.org/"
        assert not domain_status(store, old).wanted

        # When its renewal time comes, the old domain is parked instead of renewed: the
        # worker only looks again when the certificate expires.
        def parked() -> bool:
            state = domain_status(store, old)
            return state.next_attempt_at is None or (
                state.not_after is not None and state.next_attempt_at >= state.not_after
            )

        await wait_for_async(parked, timeout=LIFETIME)
        with store.session() as session:
            old_certs = session.scalars(
                select(Certificate)
                .join(Domain, Domain.id == Certificate.domain_id)
                .where(Domain.name == old)
            ).all()
        assert len(old_certs) == 1
    finally:
        await runtime.aclose()
    store.close()


@pytest.fixture(scope="module")
def long_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Pebble with its default (years-long) certificates, so only ARI makes them renew."""
    world = start_platform(tmp_path_factory.mktemp("pebble-long"))
    yield world
    world.pebble.stop()
    world.dns.stop()


@pytest.mark.pebble
async def test_ari_window_drives_renewal(long_lived: Platform, tmp_path: Path) -> None:
    platform = long_lived
    front = RenewalInfoFront(platform.pebble).start()
    soon = datetime.now(UTC) + timedelta(seconds=4)
    month = datetime.now(UTC) + timedelta(days=30)
    first_seen: list[str] = []

    def window(certificate_id: str) -> tuple[datetime, datetime]:
        # The first certificate should be renewed soon; its successor has a month to go.
        first_seen[:] = first_seen or [certificate_id]
        if certificate_id == first_seen[0]:
            return soon, soon + timedelta(seconds=1)
        return month, month + timedelta(days=1)

    front.window = window
    runtime, store = await start(platform, tmp_path, acme_directory_url=front.directory_url)
    domain = "links.ari.test"
    platform.point(domain)
    try:
        create_account(store, "ari")
        set_tracking_domain(store, "ari", domain, POLICY)
        runtime.wake()
        await wait_until_secured(store, domain)
        first = _certificates(store)[0]
        # Renewal is planned inside the CA's window, long before the lifetime rule would.
        assert first.renew_at is not None and soon <= first.renew_at <= soon + timedelta(seconds=1)
        assert first.ari_next_check_at is not None
        assert front.requested  # asked for the new certificate's window
        await wait_for_async(lambda: len(_certificates(store)) >= 2, timeout=30)
        second = max(_certificates(store), key=lambda c: c.id)
        assert second.renew_at is not None and second.renew_at >= month
        assert len(_certificates(store)) == 2

        # The CA moves the window (say, a mass revocation is coming): the next renewal
        # information check picks a time inside the new window and says why.
        later = datetime.now(UTC) + timedelta(hours=2)
        front.window = lambda _: (later, later + timedelta(minutes=10))
        assert runtime.issuer is not None
        with store.session() as session:
            row = session.scalars(select(Domain).where(Domain.name == domain)).one()
            row_id = row.id
        await runtime.issuer.refresh_renewal(row_id)
        with store.session() as session:
            refreshed = session.get(Certificate, second.id)
            assert refreshed is not None and refreshed.renew_at is not None
            assert later <= refreshed.renew_at <= later + timedelta(minutes=10)
        assert "renewal_rescheduled" in [e["kind"] for e in domain_events(store, domain)]
    finally:
        await runtime.aclose()
        front.stop()
    store.close()
