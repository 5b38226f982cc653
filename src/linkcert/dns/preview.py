"""The DNS check a customer sees while typing a domain, before saving it.

It answers within a few seconds whatever DNS does, and it never decides anything: saving does
not wait for it, and the worker runs its own check after the save. Its job is to show the
records to create (the CNAME always; a CAA record when the customer's CAA forbids our CA) and
what the name resolves to now.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from linkcert.config import Settings
from linkcert.dns.caa import issue_record
from linkcert.dns.check import CheckConfig, CheckResult, State, check_domain
from linkcert.dns.resolver import Resolver, ResolverConfigError
from linkcert.names import DomainNameError, NamePolicy, validate
from linkcert.ownership import (
    DCV_PREFIX,
    dcv_label,
    dcv_record,
    not_proven_problem,
    proof_records,
)

log = logging.getLogger("linkcert.web")

# The whole check, and each DNS query in it: a page must not hang on a slow DNS server.
PREVIEW_TIMEOUT = 4.0
QUERY_TIMEOUT = 2.0

# CAA problems whose fix is adding our `issue` record (or replacing a broken one with it).
_ADD_OUR_CAA = (
    "caa_not_authorized",
    "caa_validation_method",
    "caa_account_mismatch",
    "caa_malformed",
)

STATE_TEXT = {
    "ok": "Your DNS is ready: we can secure this domain as soon as you save it.",
    "points_elsewhere": "The domain does not point to us yet.",
    "caa_blocked": "A CAA record does not allow our certificate authority.",
    "dns_error": "Your DNS servers did not answer properly.",
    "invalid": "This is not a domain name we can secure.",
    "not_proven": "The domain points to us, but its DNS does not name your account yet.",
    "delegated": "The delegation is in place: we can secure this domain before you switch its "
    "CNAME.",
    "unknown": "We could not check your DNS just now. You can still save: we keep checking.",
}


@dataclass(frozen=True)
class DnsRecord:
    """A record the customer must have, and whether DNS has it now (None: not known)."""

    name: str
    type: str
    value: str
    present: bool | None = None

    @property
    def zone_line(self) -> str:
        return f"{self.name}. {self.type} {self.value}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "value": self.value,
            "zone": self.zone_line,
            "present": self.present,
        }


@dataclass(frozen=True)
class DnsPreview:
    domain: str
    unicode_name: str
    state: str
    records: list[DnsRecord]
    found: str | None = None  # what the name resolves to now, in words
    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def state_text(self) -> str:
        return STATE_TEXT.get(self.state, self.state)

    @property
    def ready(self) -> bool:
        return self.state == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "unicode_name": self.unicode_name,
            "ready": self.ready,
            "state": self.state,
            "state_text": self.state_text,
            "found": self.found,
            "records": [record.to_json() for record in self.records],
            "problems": self.problems,
        }


def pointing_records(
    settings: Settings, domain: str, label: str | None = None, dcv_label: str | None = None
) -> list[DnsRecord]:
    """What makes `domain` point at the platform: with the account's `label`, the records that
    make it the account's (its own CNAME target and the TXT record); else a CNAME to the first
    tracking host. With a delegation zone and the account's `dcv_label` for the name, the
    `_acme-challenge` delegation comes first: added before the switch, it secures the name
    before traffic arrives."""
    first: list[DnsRecord] = []
    if settings.dcv_zone and dcv_label:
        delegation = dcv_record(domain, settings.dcv_zone, dcv_label)
        first.append(DnsRecord(delegation.name, delegation.type, delegation.value))
    if label:
        return first + [
            DnsRecord(r.name, r.type, r.value)
            for r in proof_records(settings.cname_targets, settings.edge_addresses, domain, label)
        ]
    if settings.cname_targets:
        target = settings.cname_targets[0].strip().rstrip(".").lower()
        return [DnsRecord(domain, "CNAME", target + ".")]
    return [DnsRecord(domain, "A" if ":" not in a else "AAAA", a) for a in settings.edge_addresses]


async def preview_dns(
    settings: Settings,
    name: str,
    *,
    label: str | None = None,
    dcv_secret: str | None = None,
    timeout: float = PREVIEW_TIMEOUT,
) -> DnsPreview:
    """Check `name` now, for the customer's eyes (the account with DNS `label`, and the secret
    of its delegation labels, if given); never raises for what DNS answers."""
    policy = NamePolicy.from_settings(settings)
    try:
        valid = validate(name, policy)
    except DomainNameError as error:
        problem = {"code": error.code, "message": error.message, "fix": ""}
        return DnsPreview(name.strip()[:253], name.strip()[:253], "invalid", [], None, [problem])
    delegation = dcv_label(dcv_secret, valid.ascii) if dcv_secret and settings.dcv_zone else None
    records = pointing_records(settings, valid.ascii, label, delegation)
    try:
        config = CheckConfig(
            cname_targets=settings.cname_targets,
            edge_addresses=settings.edge_addresses,
            ca_domains=settings.ca_domains,
            any_ca=len(settings.cas) > 1,
            name_policy=policy,
            nameservers=settings.nameservers,
            timeout=min(settings.dns_timeout, QUERY_TIMEOUT),
            account_label=label,
            dcv_zone=settings.dcv_zone,
            dcv_label=delegation,
        )
        resolver = Resolver(config.nameservers, timeout=config.timeout)
        result = await asyncio.wait_for(check_domain(valid.ascii, config, resolver), timeout)
    except (TimeoutError, ValueError, ResolverConfigError) as exc:
        log.info("DNS preview of %s did not complete: %s", valid.ascii, type(exc).__name__)
        return DnsPreview(valid.ascii, valid.unicode, "unknown", records)
    return _from_result(valid.ascii, valid.unicode, result, records, settings, label)


def _from_result(
    domain: str,
    unicode_name: str,
    result: CheckResult,
    records: list[DnsRecord],
    settings: Settings,
    label: str | None = None,
) -> DnsPreview:
    pointing = result.cname is not None and result.cname.ok
    if label:
        cname_labels = set(result.cname.labels) if result.cname is not None else set()
        shown = [
            DnsRecord(
                r.name,
                r.type,
                r.value,
                label in cname_labels
                if r.type == "CNAME"
                else (label in result.txt_labels if r.type == "TXT" else pointing),
            )
            if not r.name.startswith(DCV_PREFIX)
            else DnsRecord(r.name, r.type, r.value, result.dcv is not None and result.dcv.ok)
            for r in records
        ]
    else:
        shown = [DnsRecord(r.name, r.type, r.value, pointing) for r in records]
    caa = _caa_record_to_add(result, settings)
    if caa is not None:
        shown.append(caa)
    problems = [{"code": p.code, "message": p.message, "fix": p.fix} for p in result.problems]
    found = result.cname.found if result.cname is not None else None
    state = "invalid" if result.state is State.INVALID else result.state.value
    delegated = result.dcv is not None and result.dcv.ok
    if label and pointing and label not in result.labels and not delegated:
        problem = not_proven_problem(domain, label, settings.cname_targets, settings.edge_addresses)
        problems.insert(0, problem)
        if state == "ok":
            state = "not_proven"
    return DnsPreview(domain, unicode_name, state, shown, found, problems)


def _caa_record_to_add(result: CheckResult, settings: Settings) -> DnsRecord | None:
    """Our `issue` record, when adding it is the fix for the customer's CAA."""
    caa = result.caa
    codes = {problem.code for problem in result.problems}
    if caa is None or caa.relevant is None or not codes & set(_ADD_OUR_CAA):
        return None
    owner = caa.relevant.owner or result.domain
    ca = caa.decisions[0].ca_domain if caa.decisions else settings.ca_domains[0]
    line = issue_record(owner, ca)
    value = line.split(" CAA ", 1)[1]
    return DnsRecord(owner, "CAA", value, False)
