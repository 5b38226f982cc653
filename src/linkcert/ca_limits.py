"""The CA's rate limits as linkcert is told them: presets, and the `acme_rate_limits` setting.

What a CA publishes (Let's Encrypt's limits by default, chosen from the directory URL), how an
operator overrides it (`acme_rate_limits = "new_orders=300/3h, ..."` or a table), and the
checks that make a bad value stop linkcert at start-up. Parsing only: the settings need it, and
they sit below everything. The buckets that spend from these limits are in
`linkcert.worker.ratelimit`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# --- limits ----------------------------------------------------------------------------------

NEW_ORDERS = "new_orders"
CERTS_PER_DOMAIN = "certs_per_domain"
DUPLICATE_CERTS = "duplicate_certs"
FAILED_AUTHORIZATIONS = "failed_authorizations"

# What each limit counts, as a customer or an operator reads it.
LIMIT_TEXT: dict[str, str] = {
    NEW_ORDERS: "new orders per ACME account",
    CERTS_PER_DOMAIN: "certificates per registered domain",
    DUPLICATE_CERTS: "duplicate certificates for the same name",
    FAILED_AUTHORIZATIONS: "failed validations per name",
}
# The CA counts these when it issues, not when an order is placed: an order that ends without
# a certificate gives them back.
CERTIFICATE_LIMITS = frozenset({CERTS_PER_DOMAIN, DUPLICATE_CERTS})

DEFAULT_RENEWAL_RESERVE = 0.2

LETS_ENCRYPT_HOSTS = frozenset(
    {"acme-v02.api.letsencrypt.org", "acme-staging-v02.api.letsencrypt.org"}
)

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_LIMIT_VALUE = re.compile(r"^(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|min|m|h|d)$")
# A balance this close to what is needed counts as enough (refill arithmetic is floating point).


@dataclass(frozen=True)
class RateLimit:
    """Up to `burst` requests at once; the bucket refills evenly over `period` seconds."""

    burst: int
    period: float

    def __post_init__(self) -> None:
        if self.burst < 1:
            raise ValueError("a rate limit allows at least 1 request")
        if not self.period > 0:
            raise ValueError("a rate limit's period must be longer than zero")

    @property
    def refill_seconds(self) -> float:
        """Seconds for one token to come back."""
        return self.period / self.burst

    def __str__(self) -> str:
        return f"{self.burst} per {period_text(self.period)}"


_HOUR = 3600
_WEEK = 7 * 24 * _HOUR

LETS_ENCRYPT_LIMITS: dict[str, RateLimit] = {
    NEW_ORDERS: RateLimit(300, 3 * _HOUR),  # one back every 36 s
    CERTS_PER_DOMAIN: RateLimit(50, _WEEK),  # one back every 202 min
    DUPLICATE_CERTS: RateLimit(5, _WEEK),  # one back every 34 h
    FAILED_AUTHORIZATIONS: RateLimit(5, _HOUR),  # one back every 12 min
}

# For benchmarks on Pebble, which has no limits of its own: the orders bucket paces a wave the
# way CertMagic paces itself (one order a second after a burst of 60), and the per-name limits
# keep Let's Encrypt's counts with days shortened to minutes, so a run of a few minutes goes
# through several refills.
PEBBLE_BENCH_LIMITS: dict[str, RateLimit] = {
    NEW_ORDERS: RateLimit(60, 60),
    CERTS_PER_DOMAIN: RateLimit(50, 7 * 60),
    DUPLICATE_CERTS: RateLimit(5, 7 * 60),
    FAILED_AUTHORIZATIONS: RateLimit(5, 60),
}

PRESETS: dict[str, dict[str, RateLimit]] = {
    "letsencrypt": LETS_ENCRYPT_LIMITS,
    "pebble-bench": PEBBLE_BENCH_LIMITS,
    "none": {},
}


@dataclass(frozen=True)
class RateLimitSetting:
    """The `acme_rate_limits` setting, parsed.

    `preset` replaces the directory's own defaults when given; `overrides` then set single
    limits, None turning one off.
    """

    preset: str | None
    overrides: Mapping[str, RateLimit | None]


def parse_rate_limits(value: str | Mapping[str, str]) -> RateLimitSetting:
    """Parse `acme_rate_limits`; a ValueError says what is wrong with which part.

    Text form: comma-separated items, optionally starting with a preset name
    (`pebble-bench`, `letsencrypt`, `none`), then `NAME=COUNT/PERIOD` or `NAME=off`, e.g.
    `new_orders=300/3h,certs_per_domain=50/7d`. Table form (TOML): `NAME = "COUNT/PERIOD"`.
    """
    preset: str | None = None
    items: list[tuple[str, str]] = []
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if parts and "=" not in parts[0]:
            preset = parts.pop(0)
            if preset not in PRESETS:
                raise ValueError(
                    f"unknown preset {preset!r}; the presets are {', '.join(PRESETS)} "
                    "(or give NAME=COUNT/PERIOD items)"
                )
        for part in parts:
            name, sep, text = part.partition("=")
            if not sep:
                raise ValueError(
                    f"{part!r}: expected NAME=COUNT/PERIOD (e.g. new_orders=300/3h) or NAME=off; "
                    "a preset name may only come first"
                )
            items.append((name.strip(), text.strip()))
    else:
        items = [(str(name), str(text).strip()) for name, text in value.items()]
    overrides: dict[str, RateLimit | None] = {}
    for name, text in items:
        if name not in LIMIT_TEXT:
            raise ValueError(f"unknown limit {name!r}; the limits are {', '.join(LIMIT_TEXT)}")
        if name in overrides:
            raise ValueError(f"the limit {name!r} is given twice")
        overrides[name] = _parse_limit(name, text)
    return RateLimitSetting(preset, overrides)


def _parse_limit(name: str, text: str) -> RateLimit | None:
    if text.lower() == "off":
        return None
    match = _LIMIT_VALUE.match(text)
    if match is None:
        raise ValueError(
            f"{name}={text!r}: expected COUNT/PERIOD with a unit s, min, h or d "
            "(e.g. 300/3h, 50/7d) or off"
        )
    count, amount, unit = match.groups()
    try:
        return RateLimit(int(count), float(amount or 1) * _UNITS[unit])
    except ValueError as exc:
        raise ValueError(f"{name}={text!r}: {exc}") from None


def is_lets_encrypt(directory_url: str) -> bool:
    """Whether the directory is Let's Encrypt's (production or staging)."""
    return (urlsplit(directory_url).hostname or "").lower() in LETS_ENCRYPT_HOSTS


def limits_for(directory_url: str, setting: str | Mapping[str, str] | None) -> dict[str, RateLimit]:
    """The limits in force: the directory's defaults, then the operator's setting on top."""
    limits = dict(LETS_ENCRYPT_LIMITS) if is_lets_encrypt(directory_url) else {}
    if setting is None:
        return limits
    parsed = parse_rate_limits(setting)
    if parsed.preset is not None:
        limits = dict(PRESETS[parsed.preset])
    for name, limit in parsed.overrides.items():
        if limit is None:
            limits.pop(name, None)
        else:
            limits[name] = limit
    return limits


def period_text(seconds: float) -> str:
    for unit_seconds, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count = seconds / unit_seconds
        if count >= 1 and count == int(count):
            return unit if count == 1 else f"{int(count)} {unit}s"
    return f"{seconds:g} seconds"
