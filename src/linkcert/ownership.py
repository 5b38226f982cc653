"""Who owns a name: the account whose own record DNS shows, not the first one to save it.

Every account has a random DNS label (`Account.dns_label`). A customer proves that the name is
their account's in one of two ways, either enough on its own:

- a CNAME to the account's own target, `<label>.<platform target>` (the operator serves every
  such name with one wildcard record, `*.<platform target>`), or
- a TXT record `_linkcert.<name>` holding `linkcert=<label>`, which is also how a name at a
  domain's root proves it: there the platform's edge addresses (CNAME flattening, ALIAS) say
  nothing about which account was chosen.

Saving a name makes a claim (`DomainClaim`); the worker turns the claim whose record DNS shows
into ownership (`Domain.account_id`). Names verified before accounts had labels are marked
`legacy`: for them the shared target still counts, until the operator moves them over.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from linkcert.config import Settings

TXT_PREFIX = "_linkcert."
TXT_VALUE_PREFIX = "linkcert="

PROOF_DNS = "dns"
PROOF_OPERATOR = "operator"
PROOF_LEGACY = "legacy"

CLAIM_PENDING = "pending"
CLAIM_LOST = "lost"


@dataclass(frozen=True)
class ClaimPolicy:
    """How long an unproven claim lasts and how many an account may hold (settings)."""

    lifetime: timedelta = timedelta(hours=72)
    max_open: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaimPolicy:
        return cls(timedelta(hours=settings.claim_expiry_hours), settings.max_unproven_claims)


@dataclass(frozen=True)
class DnsRecord:
    """One DNS record in zone-file terms: what a customer types at their DNS provider."""

    name: str  # the owner name, without the trailing dot
    type: str
    value: str

    def zone_line(self) -> str:
        return f"{self.name}. {self.type} {self.value}"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "value": self.value}


def account_target(settings_targets: Iterable[str], label: str) -> str | None:
    """The account's own CNAME target (no trailing dot), or None without platform targets."""
    for target in settings_targets:
        host = target.strip().rstrip(".").lower()
        if host:
            return f"{label}.{host}"
    return None


def txt_value(label: str) -> str:
    return f"{TXT_VALUE_PREFIX}{label}"


def txt_name(domain: str) -> str:
    return f"{TXT_PREFIX}{domain}"


def proof_records(
    targets: Iterable[str], edge_addresses: Iterable[str], domain: str, label: str
) -> list[DnsRecord]:
    """The records that make `domain` this account's: its CNAME (or, without platform targets,
    the edge's addresses) and the TXT record, which a name at a domain's root needs."""
    target = account_target(targets, label)
    records: list[DnsRecord] = []
    if target is not None:
        records.append(DnsRecord(domain, "CNAME", target + "."))
    else:
        records.extend(
            DnsRecord(domain, "AAAA" if ":" in address else "A", address)
            for address in edge_addresses
        )
    records.append(DnsRecord(txt_name(domain), "TXT", f'"{txt_value(label)}"'))
    return records


def not_proven_problem(
    domain: str, label: str, targets: Iterable[str], edge_addresses: Iterable[str]
) -> dict[str, str]:
    """What a claimant reads while DNS leads to the platform without naming their account."""
    records = proof_records(targets, edge_addresses, domain, label)
    cname = [r for r in records if r.type == "CNAME"]
    txt = records[-1]
    if cname:
        fix = (
            f"Point {domain} at your account's own target: {cname[0].zone_line()} "
            f"(or keep the CNAME and add {txt.zone_line()})."
        )
    else:
        fix = f"Add this record: {txt.zone_line()}"
    return {
        "code": "ownership_not_proven",
        "message": (
            f"{domain} points to the platform, but not to your account's own target, and has "
            "no TXT record naming your account, so it is not yet proven to be yours."
        ),
        "fix": fix,
    }


def lost_problem(domain: str) -> dict[str, str]:
    """What the other claimants read once DNS has proven the name to be another account's."""
    return {
        "code": "claimed_by_another_account",
        "message": (
            f"The DNS of {domain} names another account on this platform, so {domain} is that "
            "account's and cannot be secured for yours."
        ),
        "fix": (
            f"If {domain} is yours, change its DNS to the records shown for your account; "
            "linkcert then gives it to your account. Otherwise choose another domain."
        ),
    }


# --- Delegated DNS-01 ---------------------------------------------------------------------
# A customer may delegate the ACME DNS-01 challenge of their name to the platform:
# `_acme-challenge.<name> CNAME <dcv label>.<dcv zone>`. The label is HMAC-SHA256 of the name
# under the account's own secret (`Account.dcv_secret`, never shown): stable for as long as the
# account lives (no key rotation changes it), different for every (account, name), and not
# computable by anyone else, so nobody can point a name at another account's label or learn
# anything from one. It names the account, so the delegation also proves ownership.

DCV_PREFIX = "_acme-challenge."
DCV_LABEL_CHARS = 26  # 130 bits in lowercase base32


def dcv_label(account_secret: str, domain: str) -> str:
    """The DNS-01 delegation label of `domain` (ASCII form) for the account with this secret."""
    digest = hmac.new(
        account_secret.encode("ascii"),
        domain.strip().rstrip(".").lower().encode("ascii"),
        hashlib.sha256,
    ).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:DCV_LABEL_CHARS]


def dcv_name(domain: str) -> str:
    return f"{DCV_PREFIX}{domain}"


def dcv_target(zone: str, label: str) -> str:
    return f"{label}.{zone.strip().rstrip('.').lower()}"


def dcv_record(domain: str, zone: str, label: str) -> DnsRecord:
    """The record that delegates `domain`'s DNS-01 challenge to the platform."""
    return DnsRecord(dcv_name(domain), "CNAME", dcv_target(zone, label) + ".")
