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

from linkcert import names
from linkcert.dns.caa_lookup import CaaFinding, check_caa
from linkcert.dns.cname import CnameFinding, CnameStatus, check_cname
from linkcert.dns.problems import Problem, caa_problems, cname_problems
from linkcert.dns.resolver import DEFAULT_TIMEOUT, Resolver, parse_nameserver

DEFAULT_CA_DOMAINS = ("letsencrypt.org",)


class State(StrEnum):
    """The DNS state of a domain, as the lifecycle worker records it."""

    OK = "ok"
    POINTS_ELSEWHERE = "points_elsewhere"  # the customer must change where the name points
    CAA_BLOCKED = "caa_blocked"  # the CAA records that apply forbid our CA
    DNS_ERROR = "dns_error"  # a lookup failed: nothing is known to be wrong; try again later
    INVALID = "invalid"  # the name itself is not acceptable


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
        if not self.cname_targets and not self.edge_addresses:
            raise ValueError("give at least one CNAME target (a platform tracking host name)")
        if not self.ca_domains:
            raise ValueError("give at least one CA domain, such as letsencrypt.org")
        for server in self.nameservers:
            parse_nameserver(server)
        if self.timeout <= 0:
            raise ValueError("the DNS timeout must be a positive number of seconds")


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one domain. `cname` and `caa` are None when the name was not checked."""

    domain: str
    state: State
    cname: CnameFinding | None
    caa: CaaFinding | None
    problems: tuple[Problem, ...]

    @property
    def ready(self) -> bool:
        return self.state is State.OK

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; its shape is what `linkcert check --json` prints."""
        return {
            "domain": self.domain,
            "ready": self.ready,
            "state": self.state.value,
            "cname": _cname_json(self.cname),
            "caa": _caa_json(self.caa),
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
    cname, caa = await asyncio.gather(
        check_cname(resolver, domain, config.cname_targets, config.edge_addresses),
        check_caa(
            resolver,
            domain,
            config.ca_domains,
            account_uri=config.account_uri,
            challenge_method=config.challenge_method,
        ),
    )
    problems = cname_problems(domain, cname, config.cname_targets, config.edge_addresses)
    permits = bool(caa.permitted_cas) if config.any_ca else caa.permits
    if not _same_failure(cname, caa, domain) and not (permits and caa.failure is None):
        problems += caa_problems(
            domain, caa, config.cname_targets, config.account_uri, config.challenge_method
        )
    return CheckResult(domain, _state(cname, caa, permits), cname, caa, tuple(problems))


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
