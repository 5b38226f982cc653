"""Settings: one typed object, read from a TOML file, `LINKCERT_<NAME>` variables and flags.

Precedence, lowest first: built-in defaults, the TOML file (`--config FILE` or `LINKCERT_CONFIG`),
environment variables, command-line overrides. Every value is validated at start-up so that a
bad setting stops the process with a message naming it, not a failure hours later.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from linkcert.config_sources import ENV_PREFIX as ENV_PREFIX
from linkcert.config_sources import ConfigError as ConfigError
from linkcert.config_sources import (
    config_path,
    effective_database_url,
    environment_values,
    file_values,
)
from linkcert.hostport import parse_host_port
from linkcert.redact import masked_url, shown_url

LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
SECRET_FIELDS = (
    "master_key",
    "tracking_key",
    "tracking_keys",
    "acme_eab_hmac_key",
    "smtp_password",
    "webhook_secret",
    "event_broker_url",
    "dcv_tsig_secret",
)

KeyType = Literal["ec256", "rsa2048", "rsa3072"]
EdgeMode = Literal["tracking", "proxy", "both"]


def _listen(value: str) -> str:
    parse_host_port(value)
    return value


def check_alert_settings(settings: Settings) -> Settings:
    """Alert settings that only make sense together, checked at start-up."""
    for url in settings.webhook_urls:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"webhook_urls: {url!r} is not an http(s) URL")
    if settings.webhook_urls and settings.webhook_secret is None:
        raise ValueError("webhook_urls needs webhook_secret, so that receivers can check senders")
    if settings.smtp_host and not settings.smtp_from:
        raise ValueError("smtp_host needs smtp_from, the sender address of alert emails")
    if settings.metrics_listen is not None:
        parse_host_port(settings.metrics_listen)
    return settings


def check_proxy_settings(settings: Settings) -> Settings:
    """Proxy mode needs somewhere to relay to, and a CA bundle that exists."""
    if settings.edge_mode != "tracking" and not settings.edge_upstreams:
        raise ValueError(
            f"edge_mode {settings.edge_mode!r} needs edge_upstreams, the origin(s) to relay to "
            "(http://HOST:PORT or https://HOST:PORT)"
        )
    bundle = settings.upstream_ca_bundle
    if bundle is not None:
        if not bundle.is_file():
            raise ValueError(f"upstream_ca_bundle: {bundle} is not a readable file")
        import ssl

        try:
            ssl.create_default_context(cafile=str(bundle))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"upstream_ca_bundle: {bundle} holds no usable PEM certificate ({exc})"
            ) from None
    return settings


TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


def check_dcv_settings(settings: Settings) -> Settings:
    """Delegated DNS-01 needs its zone, the server to update and a TSIG key, all together."""
    if settings.dcv_zone is None:
        return settings
    import base64
    import binascii

    import dns.exception
    import dns.name

    zone = settings.dcv_zone.strip().rstrip(".").lower()
    try:
        dns.name.from_text(zone)
    except dns.exception.DNSException:
        raise ValueError(f"dcv_zone: {settings.dcv_zone!r} is not a DNS zone name") from None
    if not zone or "." not in zone:
        raise ValueError(f"dcv_zone: {settings.dcv_zone!r} must be a zone such as dcv.example.com")
    missing = [
        name
        for name in ("dcv_update_server", "dcv_tsig_key_name", "dcv_tsig_secret")
        if getattr(settings, name) is None
    ]
    if missing:
        raise ValueError(
            f"dcv_zone needs {', '.join(missing)}: linkcert writes the DNS-01 TXT records in "
            "that zone with TSIG-signed dynamic updates"
        )
    assert settings.dcv_update_server is not None and settings.dcv_tsig_secret is not None
    parse_host_port(settings.dcv_update_server, default_port=53)
    for server in settings.dcv_check_servers:
        parse_host_port(server, default_port=53)
    if settings.dcv_tsig_algorithm.lower().rstrip(".") not in TSIG_ALGORITHMS:
        raise ValueError(
            f"dcv_tsig_algorithm: {settings.dcv_tsig_algorithm!r} is not one of "
            f"{', '.join(TSIG_ALGORITHMS)}"
        )
    try:
        secret = base64.b64decode(settings.dcv_tsig_secret.get_secret_value(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("dcv_tsig_secret: must be the TSIG key's secret in base64") from None
    if not secret:
        raise ValueError("dcv_tsig_secret: must not be empty")
    object.__setattr__(settings, "dcv_zone", zone)
    return settings


class AcmeCa(BaseModel):
    """One ACME CA of `acme_cas`: where it is, what CAA must name to permit it, how to use it.

    `caa_domains` are the issuer domain names a CAA `issue` record must name for this CA
    (e.g. `letsencrypt.org`, `pki.goog`, `sectigo.com`). `rate_limits` takes what
    `acme_rate_limits` takes; unset, Let's Encrypt's limits for its directories, none otherwise.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    directory_url: str
    caa_domains: tuple[str, ...]
    eab_kid: str | None = None
    eab_hmac_key: SecretStr | None = None
    profile: str | None = None
    ca_bundle: Path | None = None
    rate_limits: str | dict[str, str] | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value or len(value) > 100:
            raise ValueError("a CA needs a name of 1 to 100 characters, such as Let's Encrypt")
        return value

    @field_validator("directory_url")
    @classmethod
    def _check_directory(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"directory_url must be an http(s) URL, not {value!r}")
        return value

    @field_validator("caa_domains", mode="before")
    @classmethod
    def _split_domains(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("caa_domains")
    @classmethod
    def _check_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = tuple(item.strip().lower().removesuffix(".") for item in value)
        if not domains or not all(domains):
            raise ValueError(
                "caa_domains needs the CA's CAA issuer domain(s), such as letsencrypt.org"
            )
        return domains

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _check_rate_limits(cls, value: object) -> object:
        from linkcert.ca_limits import parse_rate_limits

        if isinstance(value, str | dict):
            parse_rate_limits(value)
        return value

    @model_validator(mode="after")
    def _check_eab(self) -> AcmeCa:
        if (self.eab_kid is None) != (self.eab_hmac_key is None):
            raise ValueError(
                f"{self.name}: External Account Binding needs eab_kid and eab_hmac_key"
            )
        return self


def ca_name_for(directory_url: str) -> str:
    """A name for the CA of the single-CA settings: Let's Encrypt, or its directory's host."""
    from urllib.parse import urlsplit

    from linkcert.ca_limits import is_lets_encrypt

    if is_lets_encrypt(directory_url):
        return "Let's Encrypt"
    return urlsplit(directory_url).hostname or directory_url


def check_acme_cas(settings: Settings) -> Settings:
    """`acme_cas` replaces the single-CA settings; its names and directories are distinct."""
    if not settings.acme_cas:
        return settings
    single = {
        "acme_directory_url",
        "acme_ca_bundle",
        "acme_eab_kid",
        "acme_eab_hmac_key",
        "acme_profile",
        "acme_rate_limits",
    }
    mixed = sorted(single & settings.model_fields_set)
    if mixed:
        raise ValueError(
            f"acme_cas replaces {', '.join(mixed)}: give each CA's settings in acme_cas instead"
        )
    names = [ca.name.lower() for ca in settings.acme_cas]
    directories = [ca.directory_url for ca in settings.acme_cas]
    if len(set(names)) != len(names) or len(set(directories)) != len(directories):
        raise ValueError("acme_cas: each CA needs its own name and its own directory_url")
    if "ca_domains" not in settings.model_fields_set:
        # The DNS check judges CAA for every CA linkcert may use, in preference order.
        domains = dict.fromkeys(d for ca in settings.acme_cas for d in ca.caa_domains)
        object.__setattr__(settings, "ca_domains", tuple(domains))
    return settings


class Settings(BaseModel):
    """Every setting linkcert reads. Field names map to `LINKCERT_<NAME>` in upper case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path("var")
    database_url: str = ""
    # ACME
    acme_directory_url: str = LETS_ENCRYPT_DIRECTORY
    acme_ca_bundle: Path | None = None
    acme_contact_email: str | None = None
    acme_eab_kid: str | None = None
    acme_eab_hmac_key: SecretStr | None = None
    acme_profile: str | None = None
    key_type: KeyType = "ec256"
    # CA rate limits counted by linkcert (docs/rate-limits.md). Unset: Let's Encrypt's published
    # limits for its directories, none for other CAs. `acme_renewal_reserve` is the fraction of
    # each bucket only renewals may spend.
    acme_rate_limits: str | dict[str, str] | None = None
    acme_renewal_reserve: float = Field(default=0.2, ge=0, lt=1)
    # Several CAs, in order of preference (docs/configuration.md, "More than one CA"); unset,
    # the single-CA settings above make a list of one.
    acme_cas: tuple[AcmeCa, ...] = ()
    # A CA is held back for new orders once it failed (unreachable or 5xx) this many times in
    # a row within acme_ca_down_window seconds, until acme_ca_recheck seconds after the last.
    acme_ca_down_failures: int = Field(default=2, ge=1, le=100)
    acme_ca_down_window: float = Field(default=300.0, gt=0, le=86_400)
    acme_ca_recheck: float = Field(default=60.0, gt=0, le=86_400)
    # DNS
    nameservers: tuple[str, ...] = ()
    dns_timeout: float = Field(default=3.0, gt=0, le=60)
    cname_targets: tuple[str, ...] = ()
    edge_addresses: tuple[str, ...] = ()
    ca_domains: tuple[str, ...] = ("letsencrypt.org",)
    allow_test_domains: bool = False
    platform_domains: tuple[str, ...] = ()
    # Ownership (docs/dns-check.md): how long a saved name waits for DNS to name the account,
    # and how many such unproven claims one account may hold at once.
    claim_expiry_hours: float = Field(default=72.0, gt=0, le=24 * 90)
    max_unproven_claims: int = Field(default=5, ge=1, le=1000)
    # Delegated DNS-01 (docs/dns-check.md, docs/deploy.md): the platform's zone that customers'
    # `_acme-challenge` names CNAME to, and how linkcert writes TXT records there (RFC 2136
    # updates signed with TSIG). Unset: every certificate is obtained by HTTP-01.
    dcv_zone: str | None = None
    dcv_update_server: str | None = None  # HOST:PORT of the zone's primary
    dcv_tsig_key_name: str | None = None
    dcv_tsig_algorithm: str = "hmac-sha256"
    dcv_tsig_secret: SecretStr | None = None  # base64, as in the server's key configuration
    # The zone's authoritative servers asked directly for the TXT before the CA is told to
    # look (HOST[:PORT]); unset: the servers its NS records name, on port 53.
    dcv_check_servers: tuple[str, ...] = ()
    dcv_propagation_timeout: float = Field(default=60.0, gt=0, le=3600)
    # Listeners
    http_listen: str = "0.0.0.0:80"
    https_listen: str = "0.0.0.0:443"
    api_listen: str = "127.0.0.1:8080"
    api_docs: bool = True  # /docs, the API's interactive reference (files served locally)
    # Edge: `linkcert edge` processes sharing the ports, forked after one certificate load
    edge_processes: int = Field(default=1, ge=1, le=64)
    # TLS session resumption with ticket keys shared by every edge (made by the workers)
    edge_session_tickets: bool = True
    # Proxy mode (docs/deploy.md, "In front of your own tracker"): what the edge does with
    # requests that are not its own. `tracking`: answers only linkcert's links; `proxy`: relays
    # everything but ACME challenges and /healthz to the origins; `both`: answers linkcert's
    # valid links itself and relays the rest.
    edge_mode: EdgeMode = "tracking"
    edge_upstreams: tuple[str, ...] = ()  # http://HOST:PORT or https://HOST:PORT
    upstream_ca_bundle: Path | None = None  # for https origins; the system roots if unset
    upstream_server_name: str | None = None  # SNI and verified name for https origins
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose Forwarded/X-Forwarded-* are kept
    upstream_connect_timeout: float = Field(default=5.0, gt=0, le=300)
    upstream_first_byte_timeout: float = Field(default=30.0, gt=0, le=3600)
    upstream_idle_timeout: float = Field(default=30.0, gt=0, le=3600)
    upstream_max_connections: int = Field(default=256, ge=1, le=100_000)
    upstream_keepalive_timeout: float = Field(default=30.0, ge=0, le=3600)
    upstream_max_fails: int = Field(default=2, ge=1, le=1000)
    proxy_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    proxy_max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    proxy_max_request_line_bytes: int = Field(default=8 * 1024, ge=256, le=1024 * 1024)
    # Edge bounds (docs/runbook.md, "The edge under a connection flood")
    edge_first_byte_timeout: float = Field(default=5.0, gt=0, le=300)
    edge_handshake_timeout: float = Field(default=10.0, gt=0, le=300)
    edge_idle_timeout: float = Field(default=60.0, gt=0, le=3600)
    edge_max_connections: int = Field(default=20_000, ge=0, le=10_000_000)
    edge_max_connections_per_address: int = Field(default=256, ge=0, le=10_000_000)
    # Up to this many served domains the edge loads every certificate at start; above, only
    # the names, and each certificate at its first handshake (docs/scale.md).
    edge_preload_certificates: int = Field(default=100_000, ge=0)
    edge_certificate_wait: float = Field(default=5.0, gt=0, le=60)
    # Clicks: how long they are kept, and how often one address's repeats of one link count
    click_retention_days: float = Field(default=90.0, ge=0)
    # The domains' history (the `events` table: every state change with its reason); 0 keeps it.
    history_retention_days: float = Field(default=400.0, ge=0, le=36500)
    # Certificates no domain serves any more, kept this long past their end date; 0 keeps them.
    certificate_retention_days: float = Field(default=30.0, ge=0, le=36500)
    click_repeat_limit: int = Field(default=60, ge=0, le=1_000_000)
    click_repeat_window_seconds: float = Field(default=600.0, gt=0, le=86_400)
    # Secrets
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    tracking_key: SecretStr | None = None
    # Key rotation: ["ID:SECRET", ...], the first mints, all verify (docs/tracking-links.md).
    tracking_keys: tuple[SecretStr, ...] = ()
    # Worker
    worker_concurrency: int = Field(default=32, ge=1, le=1000)
    worker_lease_seconds: float = Field(default=30.0, ge=1, le=86400)
    # Lifecycle timing
    renewal_min_margin_hours: float = Field(default=48.0, ge=0)
    dns_recheck_hours: float = Field(default=6.0, gt=0)
    moved_release_days: float = Field(default=7.0, gt=0)
    # Alerts (email and webhooks) and metrics: see docs/alerts.md
    expiry_warning_days: float = Field(default=7.0, gt=0, le=60)
    operator_email: str | None = None
    deliverability_email: str | None = None  # brand domain requests; operator_email if unset
    # Roots of private CAs that uploaded brand certificates may chain to (PEM); uploads that
    # chain only to one of them are marked "not publicly trusted".
    upload_ca_bundle: Path | None = None
    # Brand domain requests one account may have waiting at once (each emails the team).
    brand_requests_open_max: int = Field(default=5, ge=1, le=1000)
    smtp_host: str | None = None  # no email alerts without it
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_from: str | None = None
    smtp_timeout: float = Field(default=30.0, gt=0, le=300)
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: SecretStr | None = None
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    metrics_listen: str | None = None  # a /metrics listener of its own, e.g. for worker processes
    # How often the store's figures on /metrics are read again (in the background, never by a
    # scrape itself): see docs/alerts.md.
    metrics_store_refresh_seconds: float = Field(default=60.0, ge=1, le=3600)
    # Click and open events: see docs/events.md
    record_events: bool = True
    event_client_ip: Literal["full", "truncated", "none"] = "truncated"
    event_machine_seconds: float = Field(default=5.0, ge=0, le=3600)
    events_retention_days: float = Field(default=30.0, gt=0, le=3650)
    event_webhook_batch: int = Field(default=100, ge=1, le=1000)
    event_broker_url: SecretStr | None = None  # amqp://user:password@host:5672/vhost
    event_broker_exchange: str = "linkcert.events"
    event_broker_queue: str = "linkcert.events"  # declared and bound to the exchange; "" for none
    # Accounts' event endpoints: https on public addresses only. For tests and private setups:
    webhook_allow_private_addresses: bool = False
    webhook_ca_bundle: Path | None = None

    _check_listen = field_validator("http_listen", "https_listen", "api_listen")(_listen)
    _check_alerts = model_validator(mode="after")(check_alert_settings)
    _check_proxy = model_validator(mode="after")(check_proxy_settings)
    _check_cas = model_validator(mode="after")(check_acme_cas)
    _check_dcv = model_validator(mode="after")(check_dcv_settings)

    @field_validator("acme_cas", mode="before")
    @classmethod
    def _parse_cas(cls, value: object) -> object:
        # An environment variable gives the list as JSON.
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else ()
            except json.JSONDecodeError as exc:
                raise ValueError(f"acme_cas must be a JSON list of CA tables: {exc}") from None
        return value

    @property
    def cas(self) -> tuple[AcmeCa, ...]:
        """The CAs to use, in preference order: `acme_cas`, or the single-CA settings."""
        if self.acme_cas:
            return self.acme_cas
        return (
            AcmeCa(
                name=ca_name_for(self.acme_directory_url),
                directory_url=self.acme_directory_url,
                # The first of ca_domains is the CA in use; the others are only reported.
                caa_domains=self.ca_domains[:1],
                eab_kid=self.acme_eab_kid,
                eab_hmac_key=self.acme_eab_hmac_key,
                profile=self.acme_profile,
                ca_bundle=self.acme_ca_bundle,
                rate_limits=self.acme_rate_limits,
            ),
        )

    @field_validator(
        "nameservers",
        "cname_targets",
        "edge_addresses",
        "ca_domains",
        "platform_domains",
        "webhook_urls",
        "edge_upstreams",
        "trusted_proxies",
        "dcv_check_servers",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        # Environment variables give lists as comma-separated text.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("edge_upstreams")
    @classmethod
    def _check_upstreams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from linkcert.origins import parse_origin

        return tuple(parse_origin(item).label for item in value)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an address or a network such as 10.0.0.0/8"
                ) from None
        return value

    @field_validator("nameservers")
    @classmethod
    def _check_nameservers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parse_host_port(item, default_port=53)
        return value

    @field_validator("acme_rate_limits", mode="before")
    @classmethod
    def _check_rate_limits(cls, value: object) -> object:
        # Imported here, as it is needed only when the setting is given.
        from linkcert.ca_limits import parse_rate_limits

        # Checked before the type, so that a table entry written as a number gets this
        # message rather than one per member of the union.
        if isinstance(value, str | dict):
            parse_rate_limits(value)
        return value

    @field_validator("tracking_key")
    @classmethod
    def _check_tracking_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be a secret of at least 32 characters")
        return value

    @field_validator("tracking_keys", mode="before")
    @classmethod
    def _split_tracking_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("tracking_keys")
    @classmethod
    def _check_tracking_keys(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        from linkcert.trackingkeys import parse_key_entries

        parse_key_entries([entry.get_secret_value() for entry in value])
        return value

    @model_validator(mode="after")
    def _one_tracking_key_form(self) -> Settings:
        if self.tracking_key is not None and self.tracking_keys:
            raise ValueError(
                "tracking_key and tracking_keys are both set: keep only tracking_keys, listing "
                "the former tracking_key as key id 0 (0:<secret>) while its links are in use"
            )
        return self

    @field_validator("upload_ca_bundle")
    @classmethod
    def _check_upload_bundle(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        try:
            text = value.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        if b"-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(f"{value} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        return value

    @field_validator("deliverability_email")
    @classmethod
    def _check_email(cls, value: str | None) -> str | None:
        # One address or several separated by commas ("a@x, b@y"), as the account page and the
        # notifications read it; kept in that form, spaces after the commas normalised.
        addresses = [part.strip() for part in (value or "").split(",") if part.strip()]
        if not addresses:
            return None
        for address in addresses:
            if "@" not in address or any(c.isspace() for c in address) or len(address) > 320:
                raise ValueError(
                    f"{address!r} is not an email address; give one address or several "
                    "separated by commas, such as deliverability@platform.example, "
                    "brands@platform.example"
                )
        return ", ".join(addresses)

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        return effective_database_url(self.database_url, self.data_dir)

    def master_key_text(self) -> str | None:
        """The master key setting, from `master_key` or the file `master_key_file`."""
        if self.master_key is not None:
            return self.master_key.get_secret_value()
        if self.master_key_file is not None:
            try:
                return self.master_key_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"master_key_file: cannot read {self.master_key_file}: {exc.strerror}"
                ) from None
        return None

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by a mask."""
        data = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            if data.get(name):
                data[name] = "********"
        data["database_url"] = mask_url_password(self.effective_database_url)
        data["acme_directory_url"] = masked_url(self.acme_directory_url)
        for ca in data.get("acme_cas") or []:
            ca["directory_url"] = masked_url(ca["directory_url"])
            if ca.get("eab_hmac_key"):
                ca["eab_hmac_key"] = "********"
        data["webhook_urls"] = [shown_url(url) for url in self.webhook_urls]
        data["edge_upstreams"] = [masked_url(url) for url in self.edge_upstreams]
        return data


def mask_url_password(url: str) -> str:
    """A database URL fit to print: its password, in the user part or the query, masked."""
    return masked_url(url)


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from file, environment and overrides, or raise ConfigError."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    file_path = config_path(config_file, env)
    if file_path is not None:
        values.update(file_values(file_path))
    values.update(environment_values(env, Settings.model_fields))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "is not a linkcert setting"
        lines.append(f"{name} (LINKCERT_{name.upper()}): {message}")
    return "invalid settings:\n  " + "\n  ".join(lines)
