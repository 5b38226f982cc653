"""Writing DNS-01 answers in the delegation zone: real Knot, TSIG-signed RFC 2136 updates."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from linkcert.config import Settings
from linkcert.dcv import DcvSettings, DcvUpdateError, ZoneUpdater
from linkcert.ownership import dcv_label, dcv_record
from linkcert.testbed.knot import ChasingResolver, KnotServer
from linkcert.testbed.waiting import free_port
from tests.dcv_support import DCV_ZONE, dcv_settings, start_knot

pytestmark = [pytest.mark.knot]


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KnotServer, ChasingResolver]]:
    server, resolver = start_knot(tmp_path_factory.mktemp("knot"))
    yield server, resolver
    resolver.stop()
    server.stop()


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
