"""The worker's view of the DNS readiness check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from linkcert.config import Settings
from linkcert.dns.check import CheckConfig, CheckResult, State, check_domain
from linkcert.dns.problems import cname_problems
from linkcert.dns.resolver import Resolver
from linkcert.names import NamePolicy
from linkcert.ownership import account_target, not_proven_problem
from linkcert.states import DnsState
from linkcert.worker.lifecycle import DnsCheck, DnsVerdict

_STATES = {
    State.OK: DnsState.OK,
    State.POINTS_ELSEWHERE: DnsState.POINTS_ELSEWHERE,
    State.CAA_BLOCKED: DnsState.CAA_BLOCKED,
    State.DNS_ERROR: DnsState.DNS_ERROR,
    State.INVALID: DnsState.DNS_ERROR,
}


def check_config(settings: Settings) -> CheckConfig:
    return CheckConfig(
        cname_targets=settings.cname_targets,
        edge_addresses=settings.edge_addresses,
        ca_domains=settings.ca_domains,
        name_policy=NamePolicy.from_settings(settings),
        nameservers=settings.nameservers,
        timeout=settings.dns_timeout,
    )


def account_problems(result: CheckResult, config: CheckConfig, label: str) -> list[dict[str, str]]:
    """The problems of `result` as the account with `label` must read them: fixes that name
    its own target, and, when DNS leads to the platform without naming it, what proves it."""
    problems = [{"code": p.code, "message": p.message, "fix": p.fix} for p in result.problems]
    cname = result.cname
    if cname is None:
        return problems
    shared = {p.code for p in cname_problems(result.domain, cname, config.cname_targets, ())}
    target = account_target(config.cname_targets, label)
    own = cname_problems(
        result.domain,
        cname,
        (target,) if target else (),
        config.edge_addresses,
    )
    rest = [p for p in problems if p["code"] not in shared]
    mine = [{"code": p.code, "message": p.message, "fix": p.fix} for p in own]
    if cname.ok and label not in result.labels:
        mine.insert(
            0,
            not_proven_problem(result.domain, label, config.cname_targets, config.edge_addresses),
        )
    return mine + rest


def make_dns_check(settings: Settings, account_uri: Callable[[], str | None]) -> DnsCheck:
    """A DNS check for the worker, judging CAA `accounturi` against our registered account.

    Its cache is short: a customer who has just fixed a record expects the next re-check (a
    few seconds later) to see it.
    """
    base = check_config(settings)
    resolver = Resolver(base.nameservers, timeout=base.timeout, max_cache_ttl=5, negative_ttl=2)

    async def dns_check(name: str) -> DnsVerdict:
        config = replace(base, account_uri=account_uri())
        result = await check_domain(name, config, resolver)
        problems = [{"code": p.code, "message": p.message, "fix": p.fix} for p in result.problems]
        return DnsVerdict(
            _STATES[result.state],
            problems,
            labels=result.labels,
            shared=result.cname is not None and result.cname.shared,
            problems_for=lambda label: account_problems(result, config, label),
        )

    return dns_check
