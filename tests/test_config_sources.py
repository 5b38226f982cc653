"""The short commands' settings, read without the settings model, are the model's.

`basic_settings` parses plain values itself and hands the rest to `load_settings`; for every
source here both give the same values, or the same error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from linkcert.config import ConfigError, Settings, load_settings
from linkcert.config_sources import BasicSettings, basic_settings, setting_names


def test_every_setting_is_known_by_name() -> None:
    assert setting_names() == set(Settings.model_fields)


def test_the_defaults_are_the_models() -> None:
    assert BasicSettings() == BasicSettings.of(Settings())


TWO_CAS = (
    '[{"name": "A", "directory_url": "https://a.test/dir", "caa_domains": ["a.test"]}, '
    '{"name": "B", "directory_url": "https://b.test/dir", "caa_domains": "b.test"}]'
)
# Values basic_settings parses itself.
PLAIN: list[dict[str, str]] = [
    {},
    {"LINKCERT_DATA_DIR": "/srv/linkcert"},
    {"LINKCERT_DATABASE_URL": "postgresql://linkcert:secret@db/linkcert"},
    {"LINKCERT_CNAME_TARGETS": "edge.platform.test, edge2.platform.test,,"},
    {"LINKCERT_EDGE_ADDRESSES": "192.0.2.1,2001:db8::1"},
    {"LINKCERT_CA_DOMAINS": "letsencrypt.org,pki.goog"},
    {"LINKCERT_NAMESERVERS": "127.0.0.1:5353,[::1]:53"},
    {"LINKCERT_DNS_TIMEOUT": "0.5"},
    {"LINKCERT_DNS_TIMEOUT": "60"},
    {"LINKCERT_ALLOW_TEST_DOMAINS": "true"},
    {"LINKCERT_ALLOW_TEST_DOMAINS": "No"},
    {"LINKCERT_PLATFORM_DOMAINS": "platform.test"},
    {"LINKCERT_SMTP_PORT": "2525", "LINKCERT_NOT_A_SETTING": "x"},
]
ENVIRONMENTS = [
    *PLAIN,
    # Left to the model, for the same value or the same error:
    {"LINKCERT_DNS_TIMEOUT": "1e0"},
    {"LINKCERT_DNS_TIMEOUT": " 2"},
    {"LINKCERT_ALLOW_TEST_DOMAINS": "2"},
    {"LINKCERT_DATA_DIR": ""},
    {"LINKCERT_ACME_CAS": TWO_CAS},
    {"LINKCERT_DNS_TIMEOUT": "0"},
    {"LINKCERT_DNS_TIMEOUT": "61"},
    {"LINKCERT_DNS_TIMEOUT": "soon"},
    {"LINKCERT_ALLOW_TEST_DOMAINS": "maybe"},
    {"LINKCERT_NAMESERVERS": "dns.example:53"},
]


def _same(basic: Any, full: Any) -> None:
    """Both give the same settings, or both refuse with the same message."""
    try:
        expected = BasicSettings.of(full())
    except ConfigError as error:
        with pytest.raises(ConfigError) as refused:
            basic()
        assert str(refused.value) == str(error)
        return
    assert basic() == expected


@pytest.mark.parametrize("environ", ENVIRONMENTS, ids=str)
def test_variables_read_as_the_model_reads_them(environ: dict[str, str]) -> None:
    _same(lambda: basic_settings(environ=environ), lambda: load_settings(environ=environ))


@pytest.mark.parametrize("environ", PLAIN, ids=str)
def test_plain_values_are_read_without_the_model(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = BasicSettings.of(load_settings(environ=environ))

    def no_model(*_args: object, **_kwargs: object) -> Settings:
        raise AssertionError("the settings model was used")

    monkeypatch.setattr("linkcert.config.load_settings", no_model)
    assert basic_settings(environ=environ) == expected


FILES = [
    'data_dir = "/srv/linkcert"\ncname_targets = ["edge.platform.test"]\ndns_timeout = 2\n',
    '[linkcert]\nallow_test_domains = true\nnameservers = "127.0.0.1:53"\nsmtp_port = 25\n',
    'cname_targets = "a.platform.test,b.platform.test"\nedge_addresses = []\n',
    # Left to the model:
    "dns_timeout = true\n",
    "dns_timout = 2\n",  # not a setting
    "cname_targets = [1, 2]\n",
    'ca_domains = ["x.test"]\n[[acme_cas]]\nname = "A"\ndirectory_url = "https://a.test/d"\n'
    'caa_domains = ["a.test"]\n',
    '[[acme_cas]]\nname = "A"\ndirectory_url = "https://a.test/d"\ncaa_domains = ["a.test"]\n'
    '[[acme_cas]]\nname = "B"\ndirectory_url = "https://b.test/d"\ncaa_domains = ["b.test"]\n',
    "linkcert = 3\n",
    "not toml [\n",
]


@pytest.mark.parametrize("text", FILES)
def test_files_read_as_the_model_reads_them(text: str, tmp_path: Path) -> None:
    path = tmp_path / "linkcert.toml"
    path.write_text(text)
    environ = {"LINKCERT_DNS_TIMEOUT": "4"}
    _same(
        lambda: basic_settings(path, environ=environ),
        lambda: load_settings(path, environ=environ),
    )
    via_variable = {**environ, "LINKCERT_CONFIG": str(path)}
    _same(lambda: basic_settings(environ=via_variable), lambda: load_settings(environ=via_variable))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    _same(lambda: basic_settings(path, environ={}), lambda: load_settings(path, environ={}))


def test_several_cas_are_counted_and_their_caa_domains_taken() -> None:
    settings = basic_settings(environ={"LINKCERT_ACME_CAS": TWO_CAS})
    assert settings.ca_count == 2
    assert settings.ca_domains == ("a.test", "b.test")
