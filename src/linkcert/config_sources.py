"""Where settings come from, and the few settings short commands read without the model.

`load_settings` (linkcert.config) reads the TOML file (`--config FILE` or `LINKCERT_CONFIG`),
then `LINKCERT_<NAME>` variables, and validates every setting with the settings model. Building
that model costs more than `linkcert check` or `linkcert domain status` takes to run, and they
need only a handful of settings, so `basic_settings` reads those from the same sources, in the
same order, and parses them here when their values are plain (text, lists of text, a number,
true or false). Whenever anything is not plain (a setting that is not linkcert's, `acme_cas`,
a value of an unexpected type, a value out of range) it hands over to `load_settings`, so a
bad value gets the very message, and a good one the very value, that the model gives.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linkcert.hostport import parse_host_port

if TYPE_CHECKING:
    from linkcert.config import Settings

ENV_PREFIX = "LINKCERT_"

# The name of every setting (the settings model's fields; a test holds the two together).
SETTING_NAMES = frozenset(
    {
        "data_dir",
        "database_url",
        "acme_directory_url",
        "acme_ca_bundle",
        "acme_contact_email",
        "acme_eab_kid",
        "acme_eab_hmac_key",
        "acme_profile",
        "key_type",
        "acme_rate_limits",
        "acme_renewal_reserve",
        "acme_cas",
        "acme_ca_down_failures",
        "acme_ca_down_window",
        "acme_ca_recheck",
        "nameservers",
        "dns_timeout",
        "cname_targets",
        "edge_addresses",
        "ca_domains",
        "allow_test_domains",
        "platform_domains",
        "claim_expiry_hours",
        "max_unproven_claims",
        "dcv_zone",
        "dcv_update_server",
        "dcv_tsig_key_name",
        "dcv_tsig_algorithm",
        "dcv_tsig_secret",
        "dcv_check_servers",
        "dcv_propagation_timeout",
        "http_listen",
        "https_listen",
        "api_listen",
        "api_docs",
        "edge_processes",
        "edge_session_tickets",
        "edge_mode",
        "edge_upstreams",
        "upstream_ca_bundle",
        "upstream_server_name",
        "trusted_proxies",
        "upstream_connect_timeout",
        "upstream_first_byte_timeout",
        "upstream_idle_timeout",
        "upstream_max_connections",
        "upstream_keepalive_timeout",
        "upstream_max_fails",
        "proxy_max_body_bytes",
        "proxy_max_header_bytes",
        "proxy_max_request_line_bytes",
        "edge_first_byte_timeout",
        "edge_handshake_timeout",
        "edge_idle_timeout",
        "edge_max_connections",
        "edge_max_connections_per_address",
        "click_retention_days",
        "click_repeat_limit",
        "click_repeat_window_seconds",
        "master_key",
        "master_key_file",
        "tracking_key",
        "tracking_keys",
        "worker_concurrency",
        "worker_lease_seconds",
        "renewal_min_margin_hours",
        "dns_recheck_hours",
        "moved_release_days",
        "expiry_warning_days",
        "operator_email",
        "deliverability_email",
        "upload_ca_bundle",
        "brand_requests_open_max",
        "smtp_host",
        "smtp_port",
        "smtp_username",
        "smtp_password",
        "smtp_starttls",
        "smtp_from",
        "smtp_timeout",
        "webhook_urls",
        "webhook_secret",
        "webhook_timeout",
        "metrics_listen",
        "metrics_store_refresh_seconds",
        "record_events",
        "event_client_ip",
        "event_machine_seconds",
        "events_retention_days",
        "event_webhook_batch",
        "event_broker_url",
        "event_broker_exchange",
        "event_broker_queue",
        "webhook_allow_private_addresses",
        "webhook_ca_bundle",
    }
)


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it and says what it takes."""


def config_path(config_file: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The settings file: `--config FILE`, else `LINKCERT_CONFIG`, else none."""
    if config_file is not None:
        return config_file
    value = environ.get(ENV_PREFIX + "CONFIG")
    return Path(value) if value else None


def file_values(path: Path) -> dict[str, Any]:
    """The settings of a TOML file, flat or under a [linkcert] table."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Accept both a flat file and one with a [linkcert] table.
    section = data.get("linkcert", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [linkcert] must be a table")
    return section


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The `LINKCERT_<NAME>` variables that name a setting (others are not settings)."""
    found: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in SETTING_NAMES:
                found[name] = value
    return found


# --- the few settings of the short commands ---------------------------------------------------


@dataclass(frozen=True)
class BasicSettings:
    """The settings `linkcert check` and `linkcert domain status` use."""

    data_dir: Path = Path("var")
    database_url: str = ""
    nameservers: tuple[str, ...] = ()
    dns_timeout: float = 3.0
    cname_targets: tuple[str, ...] = ()
    edge_addresses: tuple[str, ...] = ()
    ca_domains: tuple[str, ...] = ("letsencrypt.org",)
    allow_test_domains: bool = False
    platform_domains: tuple[str, ...] = ()
    # How many CAs linkcert may use (`acme_cas`, or one).
    ca_count: int = 1

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'linkcert.sqlite3'}"

    @classmethod
    def of(cls, settings: Settings) -> BasicSettings:
        """The same few settings, from the full settings."""
        return cls(
            data_dir=settings.data_dir,
            database_url=settings.database_url,
            nameservers=settings.nameservers,
            dns_timeout=settings.dns_timeout,
            cname_targets=settings.cname_targets,
            edge_addresses=settings.edge_addresses,
            ca_domains=settings.ca_domains,
            allow_test_domains=settings.allow_test_domains,
            platform_domains=settings.platform_domains,
            ca_count=len(settings.cas),
        )


class _NotPlain(Exception):
    """A value this module does not parse: the settings model reads it."""


_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _NotPlain
    return value


def _path(value: object) -> Path:
    if not isinstance(value, str) or not value:
        raise _NotPlain
    return Path(value)


def _texts(value: object) -> tuple[str, ...]:
    if isinstance(value, str):  # a variable gives a list as comma-separated text
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise _NotPlain


def _nameservers(value: object) -> tuple[str, ...]:
    servers = _texts(value)
    for server in servers:
        try:
            parse_host_port(server, default_port=53)
        except ValueError:
            raise _NotPlain from None
    return servers


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _NotPlain
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise _NotPlain
    number = float(value)
    if not 0 < number <= 60:
        raise _NotPlain
    return number


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _NotPlain


_PARSERS: dict[str, Callable[[object], Any]] = {
    "data_dir": _path,
    "database_url": _text,
    "nameservers": _nameservers,
    "dns_timeout": _timeout,
    "cname_targets": _texts,
    "edge_addresses": _texts,
    "ca_domains": _texts,
    "allow_test_domains": _flag,
    "platform_domains": _texts,
}


def basic_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> BasicSettings:
    """The short commands' settings from the file and the environment, or ConfigError.

    Other settings present are not validated here (only their names are), as they change
    nothing these commands do; `linkcert config check` validates them all.
    """
    env = os.environ if environ is None else environ
    path = config_path(config_file, env)
    values = file_values(path) if path is not None else {}
    values.update(environment_values(env))
    try:
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            if name not in _PARSERS:
                if name not in SETTING_NAMES or name == "acme_cas":
                    raise _NotPlain
                continue
            parsed[name] = _PARSERS[name](value)
        return BasicSettings(**parsed)
    except _NotPlain:
        from linkcert.config import load_settings

        return BasicSettings.of(load_settings(config_file, environ=env))
