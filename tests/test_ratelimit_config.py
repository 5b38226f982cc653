"""The `acme_rate_limits` setting: defaults per CA directory, overrides, presets, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from linkcert.ca_limits import (
    CERTS_PER_DOMAIN,
    DUPLICATE_CERTS,
    FAILED_AUTHORIZATIONS,
    LETS_ENCRYPT_LIMITS,
    NEW_ORDERS,
    PEBBLE_BENCH_LIMITS,
    RateLimit,
    limits_for,
    parse_rate_limits,
)
from linkcert.config import ConfigError, load_settings
from linkcert.store import Store
from linkcert.worker.ratelimit import rate_limiter_for

PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
PEBBLE = "https://127.0.0.1:14000/dir"


def test_lets_encrypt_defaults_match_its_published_limits() -> None:
    for directory in (PRODUCTION, STAGING):
        limits = limits_for(directory, None)
        assert set(limits) == {NEW_ORDERS, CERTS_PER_DOMAIN, DUPLICATE_CERTS, FAILED_AUTHORIZATIONS}
    limits = limits_for(PRODUCTION, None)
    assert limits[NEW_ORDERS].refill_seconds == 36
    assert limits[CERTS_PER_DOMAIN].refill_seconds / 60 == pytest.approx(202, abs=0.5)
    assert limits[DUPLICATE_CERTS].refill_seconds / 3600 == pytest.approx(34, abs=0.5)
    assert limits[FAILED_AUTHORIZATIONS].refill_seconds == 12 * 60
    assert str(limits[NEW_ORDERS]) == "300 per 3 hours"
    assert str(limits[CERTS_PER_DOMAIN]) == "50 per 7 days"
    assert str(limits[FAILED_AUTHORIZATIONS]) == "5 per hour"


def test_other_directories_have_no_limits_by_default() -> None:
    assert limits_for(PEBBLE, None) == {}
    assert limits_for("https://acme.zerossl.com/v2/DV90", None) == {}
    # A look-alike host is not Let's Encrypt.
    assert limits_for("https://acme-v02.api.letsencrypt.org.example/directory", None) == {}


def test_overrides_change_single_limits() -> None:
    limits = limits_for(PRODUCTION, "new_orders=100/3h, certs_per_domain=off")
    assert limits[NEW_ORDERS] == RateLimit(100, 3 * 3600)
    assert CERTS_PER_DOMAIN not in limits
    assert limits[DUPLICATE_CERTS] == LETS_ENCRYPT_LIMITS[DUPLICATE_CERTS]
    # On a CA without defaults, only what is named applies.
    assert limits_for(PEBBLE, "new_orders=10/10s") == {NEW_ORDERS: RateLimit(10, 10)}


def test_presets_replace_the_directory_defaults() -> None:
    assert limits_for(PEBBLE, "pebble-bench") == PEBBLE_BENCH_LIMITS
    assert limits_for(PEBBLE, "letsencrypt") == LETS_ENCRYPT_LIMITS
    assert limits_for(PRODUCTION, "none") == {}
    assert limits_for(PRODUCTION, "none,new_orders=1/36s") == {NEW_ORDERS: RateLimit(1, 36)}
    assert limits_for(PRODUCTION, "") == LETS_ENCRYPT_LIMITS


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("300/3h", RateLimit(300, 10800)),
        ("5/h", RateLimit(5, 3600)),
        ("3/1.5h", RateLimit(3, 5400)),
        ("10/30min", RateLimit(10, 1800)),
        ("10/30m", RateLimit(10, 1800)),
        ("1 / 36s", RateLimit(1, 36)),
        ("50/7d", RateLimit(50, 7 * 86400)),
    ],
)
def test_limit_forms(text: str, limit: RateLimit) -> None:
    assert parse_rate_limits(f"new_orders={text}").overrides == {NEW_ORDERS: limit}


def test_a_toml_table_and_an_environment_variable(tmp_path: Path) -> None:
    config = tmp_path / "linkcert.toml"
    config.write_text(
        '[linkcert]\nacme_directory_url = "https://127.0.0.1:14000/dir"\n'
        '[linkcert.acme_rate_limits]\nnew_orders = "60/1m"\nfailed_authorizations = "5/1m"\n'
    )
    settings = load_settings(config_file=config, environ={})
    assert limits_for(settings.acme_directory_url, settings.acme_rate_limits) == {
        NEW_ORDERS: RateLimit(60, 60),
        FAILED_AUTHORIZATIONS: RateLimit(5, 60),
    }
    from_env = load_settings(
        environ={"LINKCERT_ACME_RATE_LIMITS": "pebble-bench", "LINKCERT_ACME_RENEWAL_RESERVE": "0"}
    )
    assert from_env.acme_rate_limits == "pebble-bench"
    assert from_env.acme_renewal_reserve == 0


def test_the_limiter_follows_the_settings(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        settings = load_settings(environ={"LINKCERT_ACME_RENEWAL_RESERVE": "0.3"})
        limiter = rate_limiter_for(store, settings)
        assert limiter.limits == LETS_ENCRYPT_LIMITS
        assert limiter.renewal_reserve == 0.3
        pebble = load_settings(environ={"LINKCERT_ACME_DIRECTORY_URL": PEBBLE})
        assert rate_limiter_for(store, pebble).limits == {}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("new_order=300/3h", "unknown limit 'new_order'"),
        ("new_orders=300", "COUNT/PERIOD"),
        ("new_orders=300/3y", "COUNT/PERIOD"),
        ("new_orders=0/3h", "at least 1"),
        ("new_orders=5/0h", "longer than zero"),
        ("fast", "unknown preset 'fast'"),
        ("new_orders=1/1h,new_orders=2/1h", "given twice"),
        ("new_orders=1/1h,none", "may only come first"),
    ],
)
def test_bad_values_name_the_setting(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"LINKCERT_ACME_RATE_LIMITS": value})
    assert "acme_rate_limits (LINKCERT_ACME_RATE_LIMITS)" in str(caught.value)
    assert says in str(caught.value)


def test_a_bad_table_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "linkcert.toml"
    config.write_text('[linkcert.acme_rate_limits]\nnew_orders = "lots"\n')
    with pytest.raises(ConfigError, match=r"ACME_RATE_LIMITS.*new_orders='lots'"):
        load_settings(config_file=config, environ={})
    # A number where the limit's text belongs gets one clear message, not a type error per form.
    config.write_text("[linkcert.acme_rate_limits]\nnew_orders = 300\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config, environ={})
    assert str(caught.value).count("\n") == 1
    assert "new_orders='300': expected COUNT/PERIOD" in str(caught.value)


def test_the_renewal_reserve_is_a_fraction() -> None:
    with pytest.raises(ConfigError, match="LINKCERT_ACME_RENEWAL_RESERVE"):
        load_settings(environ={"LINKCERT_ACME_RENEWAL_RESERVE": "1"})
