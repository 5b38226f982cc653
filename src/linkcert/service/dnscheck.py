"""The worker's view of the DNS readiness check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from linkcert.config import AcmeCa, Settings
from linkcert.dns.caa import evaluate, issue_record
from linkcert.dns.check import CheckConfig, CheckResult, State, check_domain
from linkcert.dns.cname import CnameStatus
from linkcert.dns.problems import cname_problems, dcv_problems
from linkcert.dns.resolver import Resolver
from linkcert.names import NamePolicy
from linkcert.ownership import account_target, dcv_target, not_proven_problem
from linkcert.states import DnsState
from linkcert.worker.lifecycle import DcvSeen, DnsCheck, DnsVerdict

_STATES = {
    State.OK: DnsState.OK,
    State.POINTS_ELSEWHERE: DnsState.POINTS_ELSEWHERE,
    State.CAA_BLOCKED: DnsState.CAA_BLOCKED,
    State.DNS_ERROR: DnsState.DNS_ERROR,
    State.INVALID: DnsState.DNS_ERROR,
    State.DELEGATED: DnsState.DELEGATED,
}

AccountUris = Callable[[], Mapping[str, str | None]]


def check_config(settings: Settings) -> CheckConfig:
    return CheckConfig(
        cname_targets=settings.cname_targets,
        edge_addresses=settings.edge_addresses,
        ca_domains=settings.ca_domains,
        any_ca=len(settings.cas) > 1,
        name_policy=NamePolicy.from_settings(settings),
        nameservers=settings.nameservers,
        timeout=settings.dns_timeout,
        dcv_zone=settings.dcv_zone,
    )


def make_dns_check(settings: Settings, account_uris: AccountUris) -> DnsCheck:
    """A DNS check for the worker, judging CAA for each CA with our account at that CA.

    `account_uris` gives each CA's account URI by CA name (None while unknown), for CAA
    `accounturi`. With several CAs, a domain is ready when CAA permits any of them; the
    verdict names those it permits, for the issuer to choose from.

    Its cache is short: a customer who has just fixed a record expects the next re-check (a
    few seconds later) to see it.
    """
    base = check_config(settings)
    cas = settings.cas
    resolver = Resolver(base.nameservers, timeout=base.timeout, max_cache_ttl=5, negative_ttl=2)

    async def dns_check(name: str) -> DnsVerdict:
        uris = account_uris()
        config = replace(base, account_uri=uris.get(cas[0].name))
        result = await check_domain(name, config, resolver)
        problems = [{"code": p.code, "message": p.message, "fix": p.fix} for p in result.problems]
        dcv = result.dcv
        method = "dns-01" if dcv is not None and dcv.ok and dcv.caa_allows else "http-01"
        permitted = permitted_cas(result, cas, uris, method)
        state = _STATES[result.state]
        if len(cas) > 1 and permitted is not None:
            state, problems = _across_cas(result, state, problems, cas, permitted)
        seen = None
        if dcv is not None:
            seen = DcvSeen(dcv.found, dcv.label, dcv.caa_allows, failed=dcv.failure is not None)
        return DnsVerdict(
            state,
            problems,
            permitted,
            labels=result.labels,
            shared=result.cname is not None and result.cname.shared,
            problems_for=lambda label, dcv_label: account_problems(
                result, config, label, problems, dcv_label
            ),
            dcv=seen,
        )

    return dns_check


def account_problems(
    result: CheckResult,
    config: CheckConfig,
    label: str,
    problems: list[dict[str, str]],
    dcv_label: str | None = None,
) -> list[dict[str, str]]:
    """`problems` (the check's) as the account with `label` must read them: fixes that name
    its own target and its own delegation, and, when DNS leads to the platform without naming
    it, what proves it."""
    cname = result.cname
    if cname is None:
        return problems
    shared = {p.code for p in cname_problems(result.domain, cname, config.cname_targets, ())}
    target = account_target(config.cname_targets, label)
    own = cname_problems(result.domain, cname, (target,) if target else (), config.edge_addresses)
    rest = [p for p in problems if p["code"] not in shared]
    mine = [{"code": p.code, "message": p.message, "fix": p.fix} for p in own]
    dcv = result.dcv
    delegated = False
    if dcv is not None and dcv_label is not None:
        # The delegation as this account must set it up: its own label, nobody else's.
        dcv = replace(dcv, expected=dcv_target(dcv.zone, dcv_label))
        delegated = dcv.ok
        rest = [p for p in rest if not p["code"].startswith("dcv_")]
        present = {p["code"] for p in rest}
        assert result.caa is not None
        for p in dcv_problems(result.domain, dcv, result.caa, cname.ok, config):
            if p.code not in present:
                rest.append({"code": p.code, "message": p.message, "fix": p.fix})
    if cname.ok and label not in result.labels and not delegated:
        domain, edges = result.domain, config.edge_addresses
        mine.insert(0, not_proven_problem(domain, label, config.cname_targets, edges))
    return mine + rest


def permitted_cas(
    result: CheckResult,
    cas: tuple[AcmeCa, ...],
    uris: Mapping[str, str | None],
    method: str = "http-01",
) -> tuple[str, ...] | None:
    """The names of the CAs the relevant CAA set permits; None when it could not be read."""
    finding = result.caa
    if finding is None or finding.failure is not None:
        return None
    properties = finding.relevant.properties if finding.relevant is not None else ()
    return tuple(
        ca.name
        for ca in cas
        if any(
            evaluate(
                properties, domain, account_uri=uris.get(ca.name), challenge_method=method
            ).permitted
            for domain in ca.caa_domains
        )
    )


def _across_cas(
    result: CheckResult,
    state: DnsState,
    problems: list[dict[str, str]],
    cas: tuple[AcmeCa, ...],
    permitted: tuple[str, ...],
) -> tuple[DnsState, list[dict[str, str]]]:
    """The check's verdict is about the first CA; with several, any permitted CA will do."""
    caa_codes = [p for p in problems if p["code"].startswith("caa_")]
    others = [p for p in problems if not p["code"].startswith("caa_")]
    if permitted:
        if state is DnsState.CAA_BLOCKED:
            failed = result.cname is not None and result.cname.status in (
                CnameStatus.SERVFAIL,
                CnameStatus.TIMEOUT,
            )
            state = DnsState.DNS_ERROR if failed else DnsState.OK
        return state, others
    if state is DnsState.POINTS_ELSEWHERE:
        return state, problems
    finding = result.caa
    relevant = finding.relevant if finding is not None else None
    owner = (relevant.owner if relevant is not None else None) or result.domain
    records = [f"{issue_record(owner, ca.caa_domains[0])} ({ca.name})" for ca in cas]
    names = ", ".join(ca.name for ca in cas)
    found = "; ".join(finding.records) if finding is not None else ""
    message = (
        f"The CAA records that apply to {result.domain} allow none of the certificate "
        f"authorities linkcert can use ({names})" + (f": {found}." if found else ".")
    )
    if caa_codes:
        message = f"{caa_codes[0]['message']} {message}"
    fix = (
        "Add one of these records (CAA records add up: the CAs already listed stay "
        f"allowed): {' or '.join(records)}."
    )
    code = caa_codes[0]["code"] if caa_codes else "caa_not_authorized"
    return DnsState.CAA_BLOCKED, [*others, {"code": code, "message": message, "fix": fix}]
