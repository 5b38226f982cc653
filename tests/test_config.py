import re
from pathlib import Path

import pytest

from linkcert.config import ConfigError, load_settings
from linkcert.dns.resolver import Nameserver, parse_nameserver
from linkcert.edge.listen import parse_address
from linkcert.hostport import HostPortError, parse_host_port
from tests.certs_support import ThrowawayCA, pem


def test_defaults_and_environment(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "LINKCERT_DATA_DIR": str(tmp_path),
            "LINKCERT_NAMESERVERS": "127.0.0.1:5353, [::1]:53",
            "LINKCERT_CNAME_TARGETS": "track.platform.example",
            "LINKCERT_ALLOW_TEST_DOMAINS": "true",
            "UNRELATED": "x",
        }
    )
    assert settings.nameservers == ("127.0.0.1:5353", "[::1]:53")
    assert settings.cname_targets == ("track.platform.example",)
    assert settings.allow_test_domains is True
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'linkcert.sqlite3'}"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "linkcert.toml"
    config.write_text('[linkcert]\napi_listen = "127.0.0.1:1"\nhttp_listen = "127.0.0.1:2"\n')
    settings = load_settings(
        config_file=config,
        environ={"LINKCERT_HTTP_LISTEN": "127.0.0.1:3"},
        overrides={"https_listen": "127.0.0.1:4", "api_listen": None},
    )
    assert settings.api_listen == "127.0.0.1:1"
    assert settings.http_listen == "127.0.0.1:3"
    assert settings.https_listen == "127.0.0.1:4"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"LINKCERT_HTTP_LISTEN": "nope"}, "http_listen"),
        ({"LINKCERT_NAMESERVERS": "1.2.3.4:99999"}, "nameservers"),
        ({"LINKCERT_TRACKING_KEY": "short"}, "tracking_key"),
        ({"LINKCERT_WORKER_CONCURRENCY": "0"}, "worker_concurrency"),
        ({"LINKCERT_KEY_TYPE": "dsa"}, "key_type"),
        ({"LINKCERT_EDGE_PROCESSES": "0"}, "edge_processes"),
        ({"LINKCERT_EDGE_PROCESSES": "65"}, "edge_processes"),
        ({"LINKCERT_EDGE_MODE": "mirror"}, "edge_mode"),
        ({"LINKCERT_EDGE_UPSTREAMS": "ftp://tracker.internal"}, "edge_upstreams"),
        ({"LINKCERT_EDGE_UPSTREAMS": "http://tracker.internal/c"}, "edge_upstreams"),
        ({"LINKCERT_TRUSTED_PROXIES": "10.0.0.0/33"}, "trusted_proxies"),
        ({"LINKCERT_UPSTREAM_CONNECT_TIMEOUT": "0"}, "upstream_connect_timeout"),
    ],
)
def test_invalid_settings_name_themselves(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.upper()):
        load_settings(environ=environ)


def test_edge_processes_from_file_environment_or_flag(tmp_path: Path) -> None:
    config = tmp_path / "linkcert.toml"
    config.write_text("edge_processes = 4\n")
    assert load_settings(config_file=config, environ={}).edge_processes == 4
    environ = {"LINKCERT_EDGE_PROCESSES": "8"}
    assert load_settings(config_file=config, environ=environ).edge_processes == 8
    flag = {"edge_processes": 2}
    assert load_settings(config_file=config, environ=environ, overrides=flag).edge_processes == 2
    assert load_settings(environ={}).edge_processes == 1


def test_unknown_file_keys_and_bad_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="not a linkcert setting"):
        load_settings(config_file=bad, environ={})
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_masked_hides_secrets() -> None:
    settings = load_settings(
        environ={
            "LINKCERT_MASTER_KEY": "k:secretsecret",
            "LINKCERT_TRACKING_KEY": "t" * 40,
            "LINKCERT_DATABASE_URL": "postgresql://lc:hunter2@db/linkcert",
        }
    )
    shown = str(settings.masked())
    assert "secretsecret" not in shown and "t" * 40 not in shown and "hunter2" not in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:53", ("127.0.0.1", 53)), ("[::1]:5353", ("::1", 5353)), ("::1", ("::1", 53))],
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text, default_port=53) == expected


def test_config_show_masks_every_secret_in_urls() -> None:
    settings = load_settings(
        environ={
            "LINKCERT_DATABASE_URL": (
                "postgresql://lc:hunter2-userinfo@db:5432/linkcert"
                "?sslmode=require&password=hunter2-query&sslpassword=hunter2-ssl"
            ),
            "LINKCERT_ACME_DIRECTORY_URL": "https://ca.test/dir?token=hunter2-acme",
            "LINKCERT_WEBHOOK_URLS": (
                "https://hooks.test/services/T0/B0/hunter2-path,"
                "https://alerts.test/in?key=hunter2-hook"
            ),
            "LINKCERT_WEBHOOK_SECRET": "hunter2-secret",
        }
    )
    shown = settings.masked()
    assert "hunter2" not in repr(shown)
    # What an operator needs to read stays.
    assert shown["database_url"].startswith("postgresql://lc:********@db:5432/linkcert?")
    assert "sslmode=require" in shown["database_url"]
    assert shown["acme_directory_url"] == "https://ca.test/dir?token=********"
    assert shown["webhook_urls"] == ["https://hooks.test/services/…", "https://alerts.test/in?…"]


def test_cli_config_show_masks_urls(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from linkcert.cli import app

    env = {
        "LINKCERT_DATABASE_URL": "postgresql://lc@db/linkcert?password=hunter2",
        "LINKCERT_WEBHOOK_URLS": "https://hooks.test/services/T0/B0/hunter2",
        "LINKCERT_WEBHOOK_SECRET": "s",
    }
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert "password=********" in result.output


def test_proxy_mode_settings(tmp_path: Path) -> None:
    from linkcert.service.runtime import edge_settings

    bundle = tmp_path / "origin-ca.pem"
    bundle.write_bytes(pem(ThrowawayCA.create().root))
    settings = load_settings(
        environ={
            "LINKCERT_EDGE_MODE": "both",
            "LINKCERT_EDGE_UPSTREAMS": "http://10.0.0.5:8080, https://tracker.internal",
            "LINKCERT_UPSTREAM_CA_BUNDLE": str(bundle),
            "LINKCERT_TRUSTED_PROXIES": "10.0.0.0/8,2001:db8::/32",
            "LINKCERT_UPSTREAM_FIRST_BYTE_TIMEOUT": "7",
        }
    )
    assert settings.edge_upstreams == ("http://10.0.0.5:8080", "https://tracker.internal:443")
    edge = edge_settings(settings, "127.0.0.1:0", None, share_ports=False)
    assert edge.proxy is not None
    assert edge.proxy.mode == "both"
    assert [origin.label for origin in edge.proxy.upstreams] == list(settings.edge_upstreams)
    assert edge.proxy.first_byte_timeout == 7
    assert edge.proxy.pool.ca_bundle == bundle
    assert edge.max_header_bytes == settings.proxy_max_header_bytes
    shown = settings.masked()
    assert shown["edge_mode"] == "both"
    assert shown["trusted_proxies"] == ["10.0.0.0/8", "2001:db8::/32"]
    # The demo and a fresh install stay in tracking mode.
    default = load_settings(environ={})
    assert default.edge_mode == "tracking"
    assert edge_settings(default, "127.0.0.1:0", None, share_ports=False).proxy is None


def test_proxy_mode_needs_origins_and_a_readable_bundle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs edge_upstreams"):
        load_settings(environ={"LINKCERT_EDGE_MODE": "proxy"})
    with pytest.raises(ConfigError, match="upstream_ca_bundle"):
        load_settings(
            environ={
                "LINKCERT_EDGE_MODE": "proxy",
                "LINKCERT_EDGE_UPSTREAMS": "https://tracker.internal",
                "LINKCERT_UPSTREAM_CA_BUNDLE": str(tmp_path / "missing.pem"),
            }
        )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match="no usable PEM certificate"):
        load_settings(
            environ={
                "LINKCERT_EDGE_MODE": "proxy",
                "LINKCERT_EDGE_UPSTREAMS": "https://tracker.internal",
                "LINKCERT_UPSTREAM_CA_BUNDLE": str(garbage),
            }
        )


def test_tracking_keys_from_the_environment_first_mints() -> None:
    from linkcert.links import tracking_keys

    new, old = "n" * 40, "o" * 40
    settings = load_settings(environ={"LINKCERT_TRACKING_KEYS": f"2:{new}, 1:{old}"})
    keys = tracking_keys(settings)
    assert keys.ids == (2, 1) and keys.minting[0] == 2
    shown = str(settings.masked())
    assert new not in shown and old not in shown
    assert tracking_keys(load_settings(environ={"LINKCERT_TRACKING_KEY": old})).ids == (0,)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LINKCERT_TRACKING_KEYS": "1:short"}, "at least 32"),
        ({"LINKCERT_TRACKING_KEYS": "x" * 40}, "ID:SECRET"),
        ({"LINKCERT_TRACKING_KEYS": f"1:{'a' * 40},1:{'b' * 40}"}, "twice"),
        (
            {"LINKCERT_TRACKING_KEYS": f"1:{'a' * 40}", "LINKCERT_TRACKING_KEY": "c" * 40},
            "both set",
        ),
    ],
)
def test_bad_tracking_keys_say_what_to_do_without_the_secret(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(environ=environ)
    assert "a" * 40 not in str(caught.value) and "short" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[::1", "missing ']'"),
        ("[::1]8080", "expected ':PORT' after ']'"),
        (":80", "the host is empty"),
        ("host:99999", "the port must be a number from 0 to 65535"),
        ("::1:80", "put an IPv6 host in brackets"),
    ],
)
def test_one_host_port_parser_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(HostPortError, match=re.escape(reason)):
        parse_host_port(text)
    # The listeners and the nameservers read addresses with the same parser.
    assert parse_address(":80") == ("", 80)
    assert parse_nameserver("[2001:db8::53]:5353") == Nameserver("2001:db8::53", 5353)


def test_deliverability_email_takes_one_address_or_several(tmp_path: Path) -> None:
    def load(value: str) -> str | None:
        environ = {"LINKCERT_DATA_DIR": str(tmp_path), "LINKCERT_DELIVERABILITY_EMAIL": value}
        return load_settings(environ=environ).deliverability_email

    assert load(" brands@platform.example ") == "brands@platform.example"
    # As the account page and the notifications split it: commas, spaces after them allowed.
    both = "a@platform.example, b@platform.example"
    assert load(both) == both
    assert load("a@platform.example,b@platform.example,") == both
    assert load("  ") is None
    with pytest.raises(ConfigError, match=r"'b platform\.example' is not an email address"):
        load("a@platform.example, b platform.example")
    with pytest.raises(ConfigError, match="'nobody' is not an email address"):
        load("nobody")
