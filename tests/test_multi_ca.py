"""Several CAs: CAA decides which may issue, an outage moves new orders to the next one.

Two Pebble servers on loopback, each with its own roots: "Pebble A" (preferred, CAA identity
`pebble-a.test`, reached through a TCP proxy the test can stop) and "Pebble B" (CAA identity
`pebble-b.test`, requiring External Account Binding). Both validate through the loopback DNS
server that also holds the customers' CNAME and CAA records.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from typer.testing import CliRunner

from linkcert.auth import create_token
from linkcert.cli import app as cli
from linkcert.config import ConfigError, Settings
from linkcert.domains import (
    create_account,
    delete_domain,
    domain_events,
    domain_status,
    find_account,
    set_tracking_domain,
)
from linkcert.keys import generate_master_key
from linkcert.metrics import PROCESS_REGISTRY
from linkcert.names import NamePolicy
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Certificate, Domain, Store, utcnow
from linkcert.testbed.localdns import LocalDNSServer
from linkcert.testbed.pebble import PebbleServer, new_eab_hmac_key
from linkcert.testbed.waiting import free_port, wait_for_async
from tests.acme_front_support import RateLimitingFront
from tests.e2e_support import EDGE_TARGET, TRACKING_SECRET, loopback_settings, wait_until_secured
from tests.tcpproxy_support import TcpProxy
from tests.web_support import csrf_of

pytestmark = pytest.mark.pebble

POLICY = NamePolicy(allow_test_domains=True)
ROLES = Roles(api=False)
EAB_KID = "kid-linkcert"


@dataclass
class World:
    dns: LocalDNSServer
    first: PebbleServer
    second: PebbleServer
    proxy: TcpProxy  # in front of the first CA
    http_port: int
    master_key: str
    eab_hmac_key: str

    def cas(self, *, eab_hmac_key: str | None = None) -> list[dict[str, Any]]:
        return [
            {
                "name": "Pebble A",
                # Pebble writes its URLs with the host asked for: every request goes through
                # the proxy, so stopping it takes the whole CA away.
                "directory_url": f"https://127.0.0.1:{self.proxy.port}/dir",
                "caa_domains": ["pebble-a.test"],
                "ca_bundle": str(self.first.ca_bundle_path),
            },
            {
                "name": "Pebble B",
                "directory_url": self.second.directory_url,
                "caa_domains": ["pebble-b.test"],
                "ca_bundle": str(self.second.ca_bundle_path),
                "eab_kid": EAB_KID,
                "eab_hmac_key": eab_hmac_key or self.eab_hmac_key,
            },
        ]

    def settings(self, tmp_path: Path, **overrides: Any) -> Settings:
        db_url = f"sqlite:///{tmp_path / 'linkcert.sqlite3'}"
        values: dict[str, Any] = {"acme_cas": self.cas(), "acme_ca_recheck": 1.0, **overrides}
        return loopback_settings(
            self.dns, self.http_port, self.master_key, tmp_path, db_url, **values
        )

    def save(self, store: Store, account_id: int, domain: str) -> None:
        """Save `domain` for the account, with the TXT record that proves it is the account's."""
        set_tracking_domain(store, account_id, domain, POLICY)
        with store.session() as session:
            label = find_account(session, account_id).dns_label
        self.dns.add(f"_linkcert.{domain}", "TXT", f'"linkcert={label}"')

    def point(self, domain: str, *caa_issuers: str) -> None:
        """The customer's CNAME, and CAA records at its parent (a CNAME stands alone)."""
        self.dns.add(domain, "CNAME", EDGE_TARGET + ".")
        parent = domain.split(".", 1)[1]
        for issuer in caa_issuers:
            self.dns.add(parent, "CAA", f'0 issue "{issuer}"')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    dns = LocalDNSServer().start()
    dns.add(EDGE_TARGET, "A", "127.0.0.1")
    http_port = free_port()
    hmac_key = new_eab_hmac_key()
    first = PebbleServer(
        http_port=http_port, dns_server=dns.nameserver, workdir=tmp_path_factory.mktemp("a")
    ).start()
    second = PebbleServer(
        http_port=http_port,
        dns_server=dns.nameserver,
        workdir=tmp_path_factory.mktemp("b"),
        eab_required=True,
        eab_mac_keys={EAB_KID: hmac_key},
    ).start()
    proxy = TcpProxy("127.0.0.1", first.acme_port).start()
    yield World(dns, first, second, proxy, http_port, generate_master_key("test"), hmac_key)
    proxy.stop()
    first.stop()
    second.stop()
    dns.stop()


def intermediate_name(pebble: PebbleServer) -> str:
    certificate = x509.load_pem_x509_certificate(pebble.intermediate_pem().encode())
    value = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return str(value)


def serial_of(store: Store, name: str) -> str:
    with store.session() as session:
        domain = session.scalar(select(Domain).where(Domain.name == name))
        assert domain is not None and domain.current_certificate is not None
        return domain.current_certificate.serial


async def start(settings: Settings, roles: Roles = ROLES) -> tuple[Runtime, Store]:
    store = Store(settings.effective_database_url)
    store.migrate()
    runtime = Runtime(settings, roles, store=store)
    await runtime.start()
    return runtime, store


async def test_caa_decides_the_ca_and_delete_revokes_where_it_was_issued(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = world.settings(tmp_path)
    runtime, store = await start(settings, Roles())
    try:
        shop = create_account(store, "shop")
        only_second = "links.only-b.test"
        both = "links.both.test"
        neither = "links.neither.test"
        world.point(only_second, "pebble-b.test")
        world.point(both, "pebble-a.test", "pebble-b.test")
        world.point(neither, "sectigo.com")
        for name in (only_second, both, neither):
            account = create_account(store, f"shop-{name}")
            world.save(store, account.id, name)
        del shop
        runtime.wake()
        await wait_until_secured(store, only_second, timeout=90)
        await wait_until_secured(store, both, timeout=90)

        second = domain_status(store, only_second)
        assert second.issuer == intermediate_name(world.second)
        assert second.ca == "Pebble B"
        assert second.ca_reason == "the CAA records allow only Pebble B"
        first = domain_status(store, both)
        assert first.issuer == intermediate_name(world.first)
        assert first.ca == "Pebble A"
        assert first.ca_reason == "Pebble A is the first choice"
        chosen = [e for e in domain_events(store, only_second) if e["kind"] == "order_started"]
        assert chosen and "Pebble B" in chosen[0]["message"]
        orders = PROCESS_REGISTRY.get_sample_value("linkcert_ca_orders_total", {"ca": "Pebble B"})
        assert orders is not None and orders >= 1

        # The API, the console and the CLI say which CA issued and why.
        url = f"http://127.0.0.1:{runtime.api_port}"
        operator, _ = create_token(store, None, "console")
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as api:
            response = await api.get(
                f"/api/v1/domains/{only_second}", headers={"Authorization": f"Bearer {operator}"}
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["ca"], body["ca_reason"]) == (
            "Pebble B",
            "the CAA records allow only Pebble B",
        )
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as console:
            form = await console.get("/login")
            await console.post(
                "/login",
                data={"token": operator, "csrf_token": csrf_of(form.text)},
                headers={"Origin": url},
            )
            page = (await console.get(f"/console/domains/{only_second}")).text
        words = " ".join(unescape(re.sub(r"<[^>]+>", " ", page)).split())
        assert "Certificate authority Pebble B (the CAA records allow only Pebble B)" in words
        monkeypatch.setenv("LINKCERT_DATABASE_URL", settings.effective_database_url)
        monkeypatch.setenv("LINKCERT_TRACKING_KEY", TRACKING_SECRET)
        shown = CliRunner().invoke(cli, ["domain", "status", only_second])
        assert shown.exit_code == 0, shown.stderr
        said = " ".join(shown.stdout.split())
        assert "CA: Pebble B (the CAA records allow only Pebble B)" in said

        await wait_for_async(
            lambda: domain_status(store, neither).dns_state == "caa_blocked", timeout=30
        )
        blocked = domain_status(store, neither)
        problem = blocked.problems[0]
        assert "Pebble A" in problem["message"] and "Pebble B" in problem["message"]
        assert '"pebble-a.test"' in problem["fix"] and '"pebble-b.test"' in problem["fix"]
        assert blocked.cert_state == "none"

        # `accounturi` is compared with linkcert's account at each CA: a record naming another
        # account at the first CA does not permit it; one naming ours at the second does.
        second_account = runtime.accounts.account_uris()["Pebble B"]
        assert second_account is not None  # registered at start (the CA requires EAB)
        bound = "links.bound.test"
        world.point(
            bound,
            "pebble-a.test; accounturi=https://127.0.0.1/someone-else",
            f"pebble-b.test; accounturi={second_account}",
        )
        world.save(store, create_account(store, "bound").id, bound)
        runtime.wake()
        await wait_until_secured(store, bound, timeout=90)
        status = domain_status(store, bound)
        assert (status.ca, status.ca_reason) == ("Pebble B", "the CAA records allow only Pebble B")

        # Deleting revokes at the CA that issued the certificate, each at its own.
        serials = {name: serial_of(store, name) for name in (only_second, both)}
        for name in serials:
            delete_domain(store, name)
        runtime.wake()

        def revoked() -> bool:
            return all(domain_status(store, name).cert_state == "revoked" for name in serials)

        await wait_for_async(revoked, timeout=60)
        assert world.second.cert_status(serials[only_second]).revoked
        assert world.first.cert_status(serials[both]).revoked
        with pytest.raises(LookupError):
            world.first.cert_status(serials[only_second])
        with pytest.raises(LookupError):
            world.second.cert_status(serials[both])
    finally:
        await runtime.aclose()


async def test_an_outage_of_the_first_ca_moves_new_orders_to_the_second_and_back(
    world: World, tmp_path: Path
) -> None:
    runtime, store = await start(world.settings(tmp_path))
    try:
        before = [f"links.before-{i}.test" for i in range(2)]
        during = [f"links.during-{i}.test" for i in range(3)]
        after = [f"links.after-{i}.test" for i in range(2)]

        def save(names: list[str]) -> None:
            for name in names:
                world.point(name)
                world.save(store, create_account(store, name).id, name)
            runtime.wake()

        save(before)
        for name in before:
            await wait_until_secured(store, name, timeout=90)
            assert domain_status(store, name).ca == "Pebble A"

        world.proxy.stop()  # the first CA goes away in the middle of the wave
        save(during)
        for name in during:
            await wait_until_secured(store, name, timeout=90)
            status = domain_status(store, name)
            assert status.ca == "Pebble B", status
            assert status.issuer == intermediate_name(world.second)
            assert status.ca_reason == "Pebble A was unavailable"

        world.proxy.start()  # back: new orders go to the first CA again once it is rechecked
        assert runtime.issuer is not None
        health = runtime.issuer.health
        assert health.is_down("Pebble A")
        await wait_for_async(lambda: not health.is_down("Pebble A"), timeout=30)
        save(after)
        for name in after:
            await wait_until_secured(store, name, timeout=90)
        assert domain_status(store, after[-1]).ca == "Pebble A"
        # Certificates already issued by the second stay where they are.
        assert all(domain_status(store, name).ca == "Pebble B" for name in during)
        moves = [
            e for name in during for e in domain_events(store, name) if e["kind"] == "ca_failover"
        ]
        assert moves and "trying Pebble B" in moves[0]["message"]
        failovers = PROCESS_REGISTRY.get_sample_value(
            "linkcert_ca_failovers_total", {"from_ca": "Pebble A", "to_ca": "Pebble B"}
        )
        assert failovers is not None and failovers >= 1

        # A renewal goes to the CA of the current certificate, though the first is back.
        renewed = during[0]
        old_serial = serial_of(store, renewed)
        with store.session() as session:
            domain = session.scalar(select(Domain).where(Domain.name == renewed))
            assert domain is not None and domain.current_certificate is not None
            domain.current_certificate.renew_at = utcnow() - timedelta(seconds=1)
            domain.next_attempt_at = utcnow()
        runtime.wake()
        await wait_for_async(lambda: serial_of(store, renewed) != old_serial, timeout=90)
        status = domain_status(store, renewed)
        assert status.ca == "Pebble B"
        assert status.ca_reason == "Pebble B issued the current certificate"
        assert status.issuer == intermediate_name(world.second)
    finally:
        world.proxy.stop()
        world.proxy.start()
        await runtime.aclose()


async def test_a_rate_limited_answer_moves_that_domain_to_the_second_ca(
    world: World, tmp_path: Path
) -> None:
    front = RateLimitingFront(world.first, tmp_path / "front").start()
    cas = world.cas()
    cas[0] = {
        **cas[0],
        "directory_url": front.directory_url,
        "ca_bundle": str(front.ca_bundle_path),
    }
    runtime, store = await start(world.settings(tmp_path, acme_cas=cas))
    try:
        limited, other = "links.limited.test", "links.unlimited.test"
        front.limited[limited] = 3600
        for name in (limited, other):
            world.point(name)
            world.save(store, create_account(store, name).id, name)
        runtime.wake()
        await wait_until_secured(store, limited, timeout=90)
        await wait_until_secured(store, other, timeout=90)
        assert front.refused == [limited]
        status = domain_status(store, limited)
        assert status.ca == "Pebble B"
        assert status.ca_reason == f"Pebble A asked to wait before another order for {limited}"
        assert status.issuer == intermediate_name(world.second)
        moves = [e for e in domain_events(store, limited) if e["kind"] == "ca_failover"]
        assert moves and "rate limit" in moves[0]["message"]
        # Only that domain moved: the first CA still takes the others.
        assert domain_status(store, other).ca == "Pebble A"
    finally:
        await runtime.aclose()
        front.stop()


async def test_wrong_eab_credentials_stop_the_start_with_a_clear_error(
    world: World, tmp_path: Path
) -> None:
    settings = world.settings(tmp_path, acme_cas=world.cas(eab_hmac_key=new_eab_hmac_key()))
    store = Store(settings.effective_database_url)
    store.migrate()
    runtime = Runtime(settings, ROLES, store=store)
    try:
        with pytest.raises(ConfigError) as refused:
            await runtime.start()
    finally:
        await runtime.aclose()
    message = str(refused.value)
    assert message.startswith("acme_cas[1] (Pebble B): the CA refused")
    assert "eab_kid and eab_hmac_key" in message
    with store.session() as session:
        assert session.scalars(select(Certificate)).all() == []
