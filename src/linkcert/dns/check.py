"""The DNS readiness check of a link tracking domain: `check_domain(name, config)`.

A domain is ready when its CNAME reaches one of the platform's tracking hosts (or its addresses
are exactly the platform's edge addresses) and the CAA records that apply to it let the first
configured CA issue. The result says which state the domain is in, what DNS holds, and each
problem with the record that fixes it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import dns.exception
import dns.name
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.TXT import TXT

from linkcert import names
from linkcert.dns.caa import evaluate
from linkcert.dns.caa_lookup import CaaFinding, check_caa
from linkcert.dns.cname import CnameFinding, CnameStatus, check_cname
from linkcert.dns.problems import Problem, caa_problems, cname_problems, dcv_problems
from linkcert.dns.resolver import DEFAULT_TIMEOUT, Lookup, Resolver, parse_nameserver

DEFAULT_CA_DOMAINS = ("letsencrypt.org",)


class State(StrEnum):
    """The DNS state of a domain, as the lifecycle worker records it."""

    OK = "ok"
    POINTS_ELSEWHERE = "points_elsewhere"  # the customer must change where the name points
    CAA_BLOCKED = "caa_blocked"  # the CAA records that apply forbid our CA
    DNS_ERROR = "dns_error"  # a lookup failed: nothing is known to be wrong; try again later
    INVALID = "invalid"  # the name itself is not acceptable
    # The name does not point to us yet, but its `_acme-challenge` is delegated to the
    # platform's `dcv_zone`: a certificate can be had by DNS-01 before the switch.
    DELEGATED = "delegated"


@dataclass(frozen=True)
class CheckConfig:
    """What the check compares a domain's DNS against, and how it asks.

    `nameservers` ("HOST[:PORT]" strings; empty for the system's) and `timeout` are used only when
    check_domain creates its own resolver.
    """

    cname_targets: tuple[str, ...] = ()
    edge_addresses: tuple[str, ...] = ()
    ca_domains: tuple[str, ...] = DEFAULT_CA_DOMAINS
    account_uri: str | None = None
    challenge_method: str = "http-01"
    # Several CAs are configured (acme_cas) and any CA of ca_domains will do; otherwise the
    # first one is the CA in use and the others are only reported.
    any_ca: bool = False
    name_policy: names.NamePolicy = field(default_factory=names.NamePolicy)
    nameservers: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    # The account whose records the problems' fixes should name (None: the shared target).
    account_label: str | None = None
    # Delegated DNS-01: the platform's delegation zone (None: not offered), and the label the
    # account's `_acme-challenge` CNAME must name there (None: any label in the zone counts).
    dcv_zone: str | None = None
    dcv_label: str | None = None

    def __post_init__(self) -> None:
        for label, value in (
            ("cname_targets", self.cname_targets),
            ("edge_addresses", self.edge_addresses),
            ("ca_domains", self.ca_domains),
            ("nameservers", self.nameservers),
        ):
            if isinstance(value, str):
                raise ValueError(f"{label} must be a tuple of strings, not one string")
        # Normalized forms are what the check compares with; frozen, so set them this way.
        object.__setattr__(
            self, "cname_targets", tuple(_host_name(t, "target") for t in self.cname_targets)
        )
        object.__setattr__(
            self, "edge_addresses", tuple(_ip_address(a) for a in self.edge_addresses)
        )
        object.__setattr__(
            self, "ca_domains", tuple(_host_name(d, "CA domain") for d in self.ca_domains)
        )
        if self.dcv_zone is not None:
            object.__setattr__(self, "dcv_zone", _host_name(self.dcv_zone, "dcv zone"))
        if not self.cname_targets and not self.edge_addresses:
            raise ValueError("give at least one CNAME target (a platform tracking host name)")
        if not self.ca_domains:
            raise ValueError("give at least one CA domain, such as letsencrypt.org")
        for server in self.nameservers:
            parse_nameserver(server)
        if self.timeout <= 0:
            raise ValueError("the DNS timeout must be a positive number of seconds")


@dataclass(frozen=True)
class DcvFinding:
    """What `_acme-challenge.<name>` holds, against the delegation the platform offers."""

    name: str  # `_acme-challenge.<domain>`
    zone: str
    found: str | None  # the CNAME's target (no trailing dot); None without a CNAME
    label: str | None  # the label the target names in the zone, when it is `<label>.<zone>`
    expected: str | None  # the account's own target; None when the account is not known
    caa_allows: bool  # the CAA records let the CA validate by dns-01
    failure: str | None = None  # the lookup failed (SERVFAIL, timeout): nothing is known

    @property
    def ok(self) -> bool:
        """The delegation is in place (for the account, when the account is known)."""
        if self.label is None:
            return False
        return self.expected is None or self.found == self.expected

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "name": self.name,
            "expected": self.expected,
            "found": self.found,
            "record": f"{self.name}. CNAME {self.expected}." if self.expected else None,
            "caa_allows_dns01": self.caa_allows,
            "lookup_failure": self.failure,
        }


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one domain. `cname` and `caa` are None when the name was not checked."""

    domain: str
    state: State
    cname: CnameFinding | None
    caa: CaaFinding | None
    problems: tuple[Problem, ...]
    # Account labels DNS names: in the CNAME chain (`<label>.<target>`) or in TXT records
    # `linkcert=<label>` at `_linkcert.<name>`. Which account, if any, chose the platform.
    labels: frozenset[str] = frozenset()
    txt_labels: frozenset[str] = frozenset()  # those named by TXT records alone
    dcv: DcvFinding | None = None  # None when no delegation zone is configured

    @property
    def ready(self) -> bool:
        return self.state is State.OK

    @property
    def securable(self) -> bool:
        """A certificate can be had now: by HTTP-01, or by DNS-01 through the delegation."""
        return self.state in (State.OK, State.DELEGATED)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; its shape is what `linkcert check --json` prints."""
        return {
            "domain": self.domain,
            "ready": self.ready,
            "state": self.state.value,
            "cname": _cname_json(self.cname),
            "account_labels": sorted(self.labels),
            "caa": _caa_json(self.caa),
            "dcv": self.dcv.to_json() if self.dcv is not None else None,
            "problems": [
                {"code": p.code, "message": p.message, "fix": p.fix} for p in self.problems
            ],
        }


async def check_domain(
    name: str, config: CheckConfig, resolver: Resolver | None = None
) -> CheckResult:
    """Check `name`'s DNS: where it points (CNAME) and whether CAA lets the first CA issue.

    Pass a shared `resolver` when checking many names: its cache then serves parents such as
    `com.` once for all of them. Without one, a resolver is made from the config (which raises
    ResolverConfigError if the system has no nameserver and the config gives none).
    """
    try:
        domain = _validated(name, config.name_policy).ascii
    except names.DomainNameError as error:
        problem = Problem(error.code, error.message, "Enter the link tracking domain again.")
        return CheckResult(name, State.INVALID, None, None, (problem,))
    if resolver is None:
        resolver = Resolver(config.nameservers, timeout=config.timeout)
    cname, caa, txt, delegation = await asyncio.gather(
        check_cname(resolver, domain, config.cname_targets, config.edge_addresses),
        check_caa(
            resolver,
            domain,
            config.ca_domains,
            account_uri=config.account_uri,
            challenge_method=config.challenge_method,
        ),
        resolver.lookup(PROOF_TXT_PREFIX + domain, "TXT"),
        _delegation_lookup(resolver, domain, config.dcv_zone),
    )
    dcv = _dcv_finding(domain, config, caa, delegation)
    txt_labels = _txt_labels(txt)
    labels = frozenset(cname.labels) | txt_labels
    targets = config.cname_targets
    if config.account_label and targets:
        # The fixes name this account's own target rather than the shared one.
        targets = (f"{config.account_label}.{targets[0]}", *targets[1:])
    problems = cname_problems(domain, cname, targets, config.edge_addresses)
    permits = bool(caa.permitted_cas) if config.any_ca else caa.permits
    if dcv is not None and dcv.ok and dcv.caa_allows:
        permits = True  # DNS-01 through the delegation is what the CA will be asked for
    if not _same_failure(cname, caa, domain) and not (permits and caa.failure is None):
        problems += caa_problems(
            domain, caa, config.cname_targets, config.account_uri, config.challenge_method
        )
    state = _state(cname, caa, permits)
    if dcv is not None:
        if state is State.POINTS_ELSEWHERE and dcv.ok and dcv.caa_allows:
            state = State.DELEGATED
        problems += dcv_problems(domain, dcv, caa, cname.ok, config)
    return CheckResult(domain, state, cname, caa, tuple(problems), labels, txt_labels, dcv)


async def _delegation_lookup(resolver: Resolver, domain: str, zone: str | None) -> Lookup | None:
    if zone is None:
        return None
    return await resolver.lookup(DCV_PREFIX + domain, "CNAME")


def _dcv_finding(
    domain: str, config: CheckConfig, caa: CaaFinding, lookup: Lookup | None
) -> DcvFinding | None:
    zone = config.dcv_zone
    if zone is None or lookup is None:
        return None
    found = None
    failure = None
    if lookup.failed and lookup.outcome.value in ("servfail", "timeout"):
        failure = lookup.detail or lookup.outcome.value
    elif lookup.chain:
        found = lookup.chain[0].target.rstrip(".").lower()
    else:
        for record in lookup.records:
            if isinstance(record, CNAME):
                found = str(record.target).rstrip(".").lower()
                break
    label = None
    if found is not None and found.endswith("." + zone):
        head = found[: -len(zone) - 1]
        label = head if head and "." not in head else None
    expected = f"{config.dcv_label}.{zone}" if config.dcv_label else None
    caa_allows = caa.failure is None and (
        caa.relevant is None
        or evaluate(
            caa.relevant.properties,
            config.ca_domains[0],
            account_uri=config.account_uri,
            challenge_method="dns-01",
        ).permitted
    )
    return DcvFinding(DCV_PREFIX + domain, zone, found, label, expected, caa_allows, failure)


PROOF_TXT_PREFIX = "_linkcert."
DCV_PREFIX = "_acme-challenge."
PROOF_TXT_VALUE = "linkcert="


def _txt_labels(lookup: Lookup) -> frozenset[str]:
    """The account labels in `linkcert=<label>` TXT strings (a failed lookup names none)."""
    found = set()
    for record in lookup.records:
        if isinstance(record, TXT):
            text = b"".join(record.strings).decode("ascii", "replace").strip().lower()
            if text.startswith(PROOF_TXT_VALUE) and len(text) > len(PROOF_TXT_VALUE):
                found.add(text[len(PROOF_TXT_VALUE) :].strip())
    return frozenset(found)


_LOOKUP_FAILURES = (
    CnameStatus.SERVFAIL,
    CnameStatus.TIMEOUT,
    CnameStatus.LOOP,
    CnameStatus.TOO_LONG,
)


def _state(cname: CnameFinding, caa: CaaFinding, permits: bool) -> State:
    """Problems the customer must fix come before lookup failures, which may pass on their own."""
    cname_failed = cname.status in (CnameStatus.SERVFAIL, CnameStatus.TIMEOUT)
    if not cname.ok and not cname_failed:
        return State.POINTS_ELSEWHERE
    if caa.failure is None and not permits:
        return State.CAA_BLOCKED
    if cname_failed or caa.failure is not None:
        return State.DNS_ERROR
    return State.OK


def _same_failure(cname: CnameFinding, caa: CaaFinding, domain: str) -> bool:
    """Whether the CAA lookup failed at the name itself, as its CNAME lookup already did.

    Then both failures have one cause (a loop, a broken server), reported once.
    """
    failed_lookup = cname.status in _LOOKUP_FAILURES
    return failed_lookup and caa.failure is not None and caa.failure.name == domain


def _validated(name: str, policy: names.NamePolicy) -> names.DomainName:
    return names.validate(name, policy)


def _host_name(text: str, what: str) -> str:
    normalized = text.strip().lower().removesuffix(".")
    if not normalized:
        raise ValueError(f"{what} must not be empty")
    try:
        dns.name.from_text(normalized, origin=dns.name.root)
    except dns.exception.DNSException:
        raise ValueError(f"{what} {text!r} is not a valid host name") from None
    return normalized


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"edge address {text!r} is not an IP address") from None


def _cname_json(finding: CnameFinding | None) -> dict[str, Any] | None:
    if finding is None:
        return None
    return {
        "ok": finding.ok,
        "status": finding.status.value,
        "chain": list(finding.chain),
        "addresses": list(finding.addresses),
        "found": finding.found,
    }


def _caa_json(finding: CaaFinding | None) -> dict[str, Any] | None:
    if finding is None:
        return None
    relevant = finding.relevant
    failure = finding.failure
    return {
        "permits": finding.permits,
        "permitted_cas": list(finding.permitted_cas),
        "relevant_name": finding.relevant_name,
        "owner": relevant.owner if relevant else None,
        "records": list(finding.records),
        "decisions": [
            {"ca_domain": d.ca_domain, "permitted": d.permitted, "reason": d.reason.value}
            for d in finding.decisions
        ],
        "lookup_failure": (
            None
            if failure is None
            else {"name": failure.name, "outcome": failure.outcome.value, "detail": failure.detail}
        ),
    }
