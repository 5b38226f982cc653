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
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linkcert.hostport import parse_host_port

if TYPE_CHECKING:
    from linkcert.config import Settings

ENV_PREFIX = "LINKCERT_"


@cache
def setting_names() -> frozenset[str]:
    """The name of every setting: the fields of the settings model, read from its source
    without building it. Empty when the source is not at hand: every file then goes to the
    model, which is slower, never wrong."""
    try:
        source = (Path(__file__).parent / "config.py").read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    body = re.split(r"\n(?=\S)", source.partition("\nclass Settings(BaseModel):")[2])[0]
    return frozenset(re.findall(r"^    ([a-z][a-z0-9_]*): ", body, re.MULTILINE))


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


def environment_values(environ: Mapping[str, str], known: Container[str]) -> dict[str, str]:
    """The `LINKCERT_<NAME>` variables that name one of the `known` settings (others are not
    settings, or not the caller's)."""
    found: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in known:
                found[name] = value
    return found


# --- the few settings of the short commands ---------------------------------------------------


def effective_database_url(database_url: str | None, data_dir: Path) -> str:
    """`database_url`, or when none is set, a SQLite file in the data directory."""
    if database_url:
        return database_url
    return f"sqlite:///{data_dir / 'linkcert.sqlite3'}"


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
    # The delegation zone of DNS-01 (`dcv_zone`), None when not offered.
    dcv_zone: str | None = None

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        return effective_database_url(self.database_url, self.data_dir)

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
            dcv_zone=settings.dcv_zone,
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


def _zone(value: object) -> str:
    if not isinstance(value, str) or not value.strip().rstrip(".") or " " in value.strip():
        raise _NotPlain  # the settings model says what is wrong with it
    return value.strip().rstrip(".").lower()


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
    "dcv_zone": _zone,
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
    # Variables of other settings change nothing here (but acme_cas changes ca_domains);
    # unknown ones are no settings at all.
    values.update(environment_values(env, {*_PARSERS, "acme_cas"}))
    try:
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            if name not in _PARSERS:
                # acme_cas changes ca_domains and takes the model to read; a name that is no
                # setting gets the model's message.
                if name == "acme_cas" or name not in setting_names():
                    raise _NotPlain
                continue
            parsed[name] = _PARSERS[name](value)
        return BasicSettings(**parsed)
    except _NotPlain:
        from linkcert.config import load_settings

        return BasicSettings.of(load_settings(config_file, environ=env))
