"""The `acme_cas` setting, and which CA an order goes to (no CA needed)."""

from __future__ import annotations

import json

import pytest

from linkcert.config import ConfigError, load_settings
from linkcert.worker.cachoice import CaHealth, plan

LE = "Let's Encrypt"
GTS = "Google Trust Services"
CAS = [
    {
        "name": LE,
        "directory_url": "https://acme-v02.api.letsencrypt.org/directory",
        "caa_domains": ["letsencrypt.org"],
    },
    {
        "name": GTS,
        "directory_url": "https://dv.acme-v02.api.pki.goog/directory",
        "caa_domains": ["pki.goog"],
        "eab_kid": "kid",
        "eab_hmac_key": "c2VjcmV0LW1hYy1rZXk",
    },
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_single_ca_settings_make_a_list_of_one() -> None:
    settings = load_settings(
        environ={"LINKCERT_ACME_EAB_KID": "k", "LINKCERT_ACME_EAB_HMAC_KEY": "a2V5"}
    )
    (ca,) = settings.cas
    assert ca.name == LE
    assert ca.directory_url == settings.acme_directory_url
    assert ca.caa_domains == ("letsencrypt.org",)
    assert ca.eab_kid == "k"


def test_acme_cas_from_the_environment_in_order_with_ca_domains_from_every_ca() -> None:
    settings = load_settings(environ={"LINKCERT_ACME_CAS": json.dumps(CAS)})
    assert [ca.name for ca in settings.cas] == [LE, GTS]
    assert settings.ca_domains == ("letsencrypt.org", "pki.goog")
    shown = settings.masked()["acme_cas"]
    assert shown[1]["eab_hmac_key"] == "********"
    assert "c2VjcmV0" not in json.dumps(settings.masked())


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        (
            {"LINKCERT_ACME_CAS": json.dumps(CAS), "LINKCERT_ACME_DIRECTORY_URL": "https://x/d"},
            "acme_cas replaces acme_directory_url",
        ),
        ({"LINKCERT_ACME_CAS": json.dumps([CAS[0], CAS[0]])}, "its own name"),
        ({"LINKCERT_ACME_CAS": json.dumps([{**CAS[0], "caa_domains": []}])}, "caa_domains"),
        ({"LINKCERT_ACME_CAS": json.dumps([{**CAS[1], "eab_hmac_key": None}])}, "eab_kid"),
        ({"LINKCERT_ACME_CAS": "[{"}, "JSON list"),
    ],
)
def test_a_bad_acme_cas_is_a_clear_error(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ=environ)
    assert words in str(error.value)
    assert "c2VjcmV0" not in str(error.value)


def test_the_first_permitted_ca_in_preference_order() -> None:
    health = CaHealth()
    both = plan([LE, GTS], domain="a.test", permitted=[LE, GTS], health=health)
    assert [(c.name, c.reason) for c in both] == [
        (LE, "Let's Encrypt is the first choice"),
        (GTS, "Google Trust Services is the first choice"),
    ]
    only = plan([LE, GTS], domain="a.test", permitted=[GTS], health=health)
    assert [(c.name, c.reason) for c in only] == [(GTS, "the CAA records allow only " + GTS)]
    assert plan([LE, GTS], domain="a.test", permitted=[], health=health) == []


def test_a_down_ca_is_skipped_until_its_recheck_then_tried_first_again() -> None:
    clock = Clock()
    health = CaHealth(down_after=2, window=300, recheck=60, clock=clock)
    health.failed(LE)
    assert plan([LE, GTS], domain="a.test", permitted=None, health=health)[0].name == LE
    health.failed(LE)
    chosen = plan([LE, GTS], domain="a.test", permitted=None, health=health)
    assert [(c.name, c.reason) for c in chosen] == [
        (GTS, "Let's Encrypt was unavailable"),
        (LE, "every CA the CAA records allow is held back; trying Let's Encrypt again"),
    ]
    clock.now += 61
    assert plan([LE, GTS], domain="a.test", permitted=None, health=health)[0].name == LE


def test_a_rate_limited_domain_moves_alone_and_a_renewal_stays_with_its_ca() -> None:
    clock = Clock()
    health = CaHealth(clock=clock)
    health.limit(LE, "a.test", 120)
    assert plan([LE, GTS], domain="a.test", permitted=None, health=health)[0].name == GTS
    assert plan([LE, GTS], domain="b.test", permitted=None, health=health)[0].name == LE
    renewal = plan(
        [LE, GTS],
        domain="b.test",
        permitted=None,
        health=health,
        sticky=GTS,
        sticky_reason="Google Trust Services issued the current certificate",
    )
    assert renewal[0].name == GTS
    # ... unless its CAA no longer permits that CA.
    moved = plan([LE, GTS], domain="b.test", permitted=[LE], health=health, sticky=GTS)
    assert [c.name for c in moved] == [LE]
    clock.now += 121
    assert plan([LE, GTS], domain="a.test", permitted=None, health=health)[0].name == LE


def test_with_one_ca_there_is_no_choice_to_explain() -> None:
    (only,) = plan([LE], domain="a.test", permitted=None, health=CaHealth())
    assert (only.name, only.reason) == (LE, "")
