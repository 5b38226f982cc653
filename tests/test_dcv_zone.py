"""Writing DNS-01 answers in the delegation zone: real Knot, TSIG-signed RFC 2136 updates."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from linkcert.config import Settings
from linkcert.dcv import DcvSettings, DcvUpdateError, ZoneUpdater
from linkcert.domains import create_account, set_tracking_domain
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.names import NamePolicy
from linkcert.ownership import dcv_label, dcv_record
from linkcert.store import AcmeAccount, Domain, Order, Store
from linkcert.testbed.knot import ChasingResolver, KnotServer
from linkcert.testbed.waiting import free_port
from linkcert.worker.issuance import Issuer, IssuingCa, OrderingClient
from tests.dcv_support import DCV_ZONE, dcv_settings, start_knot

pytestmark = [pytest.mark.knot]


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KnotServer, ChasingResolver]]:
    server, resolver = start_knot(tmp_path_factory.mktemp("knot"))
    yield server, resolver
    resolver.stop()
    server.stop()


class NoAccount:
    def get(self) -> tuple[OrderingClient, int]:
        raise AssertionError("no order is placed in these tests")


def updater(knot: KnotServer, **overrides: Any) -> ZoneUpdater:
    settings = Settings.model_validate(
        {"master_key": None, **dcv_settings(knot, **overrides), "dns_timeout": 1.0}
    )
    dcv = DcvSettings.from_settings(settings)
    assert dcv is not None
    return ZoneUpdater(dcv)


def test_a_record_is_added_seen_by_the_authoritative_server_and_removed(
    knot: tuple[KnotServer, ChasingResolver],
) -> None:
    server, _ = knot
    zone = updater(server)
    zone.add_txt("label-one", "value-1")
    zone.wait_published("label-one", "value-1")
    assert server.records(f"label-one.{DCV_ZONE}", "TXT") == ['"value-1"']
    zone.remove_txt("label-one", "value-1")
    assert server.records(f"label-one.{DCV_ZONE}", "TXT") == []
    zone.remove_txt("label-one", "value-1")  # removing what is gone is no error


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"dcv_tsig_secret": base64.b64encode(b"w" * 32).decode()}, "secret differs"),
        ({"dcv_tsig_key_name": "not-a-key"}, "unknown key"),
        ({"dcv_update_server": f"127.0.0.1:{free_port()}"}, "cannot be reached"),
    ],
)
def test_a_refused_or_unreachable_update_says_why_and_writes_nothing(
    knot: tuple[KnotServer, ChasingResolver], overrides: dict[str, Any], words: str
) -> None:
    server, _ = knot
    with pytest.raises(DcvUpdateError) as raised:
        updater(server, **overrides).add_txt("label-two", "value-2")
    assert words in str(raised.value)
    assert server.update_secret not in str(raised.value)
    assert server.records(f"label-two.{DCV_ZONE}", "TXT") == []


def test_waiting_for_a_record_no_server_answers_gives_up_in_words(
    knot: tuple[KnotServer, ChasingResolver],
) -> None:
    server, _ = knot
    zone = updater(server, dcv_propagation_timeout=0.3)
    with pytest.raises(DcvUpdateError, match="still did not answer"):
        zone.wait_published("never-written", "nothing")


def test_the_delegation_is_followed_across_zones_by_the_resolver(
    knot: tuple[KnotServer, ChasingResolver],
) -> None:
    import dns.resolver

    server, resolver = knot
    server.replace("_acme-challenge.links.customer.test", "CNAME", f"label-three.{DCV_ZONE}.")
    zone = updater(server)
    zone.add_txt("label-three", "value-3")
    ask = dns.resolver.Resolver(configure=False)
    ask.nameservers = [resolver.host]
    ask.port = resolver.port
    found = ask.resolve("_acme-challenge.links.customer.test", "TXT")
    assert [r.to_text() for r in found] == ['"value-3"']
    zone.remove_txt("label-three", "value-3")


def test_labels_are_per_account_and_name_and_hide_both() -> None:
    first = dcv_label("secret-a", "links.shop.test")
    assert first == dcv_label("secret-a", "LINKS.shop.test.")  # stable, case-blind
    assert first != dcv_label("secret-b", "links.shop.test")
    assert first != dcv_label("secret-a", "links.other.test")
    assert "shop" not in first and len(first) == 26 and first.isalnum()
    record = dcv_record("links.shop.test", DCV_ZONE, first)
    assert record.zone_line() == f"_acme-challenge.links.shop.test. CNAME {first}.{DCV_ZONE}."


def test_dcv_settings_come_together_or_not_at_all() -> None:
    with pytest.raises(ValueError, match="dcv_zone needs dcv_update_server"):
        Settings.model_validate({"dcv_zone": DCV_ZONE})
    base = {
        "dcv_zone": DCV_ZONE,
        "dcv_update_server": "127.0.0.1:53",
        "dcv_tsig_key_name": "k",
    }
    with pytest.raises(ValueError, match="base64"):
        Settings.model_validate({**base, "dcv_tsig_secret": "not base64!"})
    with pytest.raises(ValueError, match="dcv_tsig_algorithm"):
        Settings.model_validate(
            {**base, "dcv_tsig_secret": "c2VjcmV0", "dcv_tsig_algorithm": "md5"}
        )
    good = Settings.model_validate(
        {**base, "dcv_zone": "DCV.Platform.test.", "dcv_tsig_secret": "c2VjcmV0"}
    )
    assert good.dcv_zone == DCV_ZONE
    assert "c2VjcmV0" not in repr(good)
    assert Settings().dcv_zone is None and DcvSettings.from_settings(Settings()) is None


def test_a_record_an_attempt_could_not_remove_is_removed_by_the_next_one(
    knot: tuple[KnotServer, ChasingResolver], tmp_path: Path
) -> None:
    """The issuer notes each DNS-01 record on its order before writing it; a record left
    behind (the update server was down when it was to be removed, or the worker died) is
    removed when the domain's next attempt starts."""
    server, _ = knot
    store = Store(f"sqlite:///{tmp_path / 'linkcert.sqlite3'}")
    store.migrate()
    create_account(store, "left", [])
    set_tracking_domain(store, "left", "left.customer.test", NamePolicy(allow_test_domains=True))
    with store.session() as session:
        domain = session.scalar(select(Domain).where(Domain.name == "left.customer.test"))
        assert domain is not None
        account = AcmeAccount(directory_url="https://ca.invalid/dir", key_encrypted=b"-")
        session.add(account)
        session.flush()
        order = Order(domain_id=domain.id, acme_account_id=account.id, csr_pem="-")
        session.add(order)
        session.flush()
        domain_id, order_id = domain.id, order.id
    zone = updater(server)
    cas = [IssuingCa("the CA", NoAccount())]  # never asked: nothing is ordered here
    issuer = Issuer(store, MasterKeys.parse(generate_master_key("t")), cas, dcv=zone)
    issuer._remember_record(order_id, "label-left", "value-left")
    zone.add_txt("label-left", "value-left")
    down = Issuer(
        store,
        MasterKeys.parse(generate_master_key("t")),
        cas,
        dcv=updater(server, dcv_update_server=f"127.0.0.1:{free_port()}"),
    )
    down._remove_leftover_records(domain_id)  # cannot reach the server: kept for later
    assert server.zone_records(DCV_ZONE, "TXT") != []
    issuer._remove_leftover_records(domain_id)
    assert server.zone_records(DCV_ZONE, "TXT") == []
    with store.session() as session:
        kept = session.get(Order, order_id)
        assert kept is not None and kept.info["dcv_records"] == []
    store.close()
