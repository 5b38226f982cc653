"""check_domain end to end against LocalDNSServer: states, problems and their fixes, JSON."""

from __future__ import annotations

import json

import pytest

from linkcert.dns import CheckConfig, CheckResult, Resolver, State, check_domain
from linkcert.names import NamePolicy
from linkcert.testbed.localdns import LocalDNSServer

NAME = "links.exmpl.com"
TARGET = "track.platform.example"
ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/7"


def config_for(server: LocalDNSServer, **overrides: object) -> CheckConfig:
    settings: dict[str, object] = {
        "cname_targets": (TARGET,),
        "edge_addresses": ("192.0.2.10",),
        "nameservers": (server.nameserver,),
        "timeout": 2.0,
        "name_policy": NamePolicy(allow_test_domains=True),
    }
    settings.update(overrides)
    return CheckConfig(**settings)  # type: ignore[arg-type]


async def check(server: LocalDNSServer, name: str = NAME, **overrides: object) -> CheckResult:
    return await check_domain(name, config_for(server, **overrides))


def codes(result: CheckResult) -> list[str]:
    return [problem.code for problem in result.problems]


async def test_ready(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    result = await check(dns_server, "Links.Exmpl.COM.")
    assert (result.ready, result.state, result.problems) == (True, State.OK, ())
    assert result.domain == NAME
    # The A lookup and the CAA climb: the name, exmpl.com and com.
    assert dns_server.query_count == 4


async def test_caa_permitting_us_is_ready(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "letsencrypt.org"')
    result = await check(dns_server)
    assert result.ready
    assert result.caa is not None and result.caa.relevant_name == "exmpl.com"


async def test_caa_blocked_names_the_record_and_the_fix(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "digicert.com"')
    result = await check(dns_server)
    assert (result.ready, result.state, codes(result)) == (
        False,
        State.CAA_BLOCKED,
        ["caa_not_authorized"],
    )
    problem = result.problems[0]
    assert 'exmpl.com. CAA 0 issue "digicert.com"' in problem.message
    assert "digicert.com, not Let's Encrypt" in problem.message
    assert 'exmpl.com. CAA 0 issue "letsencrypt.org"' in problem.fix


async def test_caa_at_the_name_itself(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "A", "192.0.2.10")
    dns_server.add(NAME, "CAA", '0 issue ";"')
    result = await check(dns_server)
    assert codes(result) == ["caa_not_authorized"]
    assert "forbid every certificate authority" in result.problems[0].message
    assert 'links.exmpl.com. CAA 0 issue "letsencrypt.org"' in result.problems[0].fix


async def test_caa_of_the_platform_target_is_our_problem(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add(TARGET, "CAA", '0 issue "digicert.com"')
    result = await check(dns_server)
    assert (result.state, codes(result)) == (State.CAA_BLOCKED, ["caa_platform_blocked"])
    assert "your DNS needs no change" in result.problems[0].message
    assert f'{TARGET}. CAA 0 issue "letsencrypt.org"' in result.problems[0].fix


async def test_caa_behind_a_dname(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "DNAME", "exmpl.net")
    dns_server.add("links.exmpl.net", "A", "192.0.2.10")
    dns_server.add("links.exmpl.net", "CAA", '0 issue "digicert.com"')
    result = await check(dns_server)
    assert result.cname is not None and result.cname.ok  # through the DNAME, to our edge
    assert (result.state, codes(result)) == (State.CAA_BLOCKED, ["caa_not_authorized"])
    problem = result.problems[0]
    assert "links.exmpl.com is an alias of links.exmpl.net" in problem.message
    assert 'links.exmpl.net. CAA 0 issue "letsencrypt.org"' in problem.fix


async def test_caa_of_the_dname_targets_parent_does_not_apply(
    dns_server: LocalDNSServer,
) -> None:
    dns_server.add("exmpl.com", "DNAME", "exmpl.net")
    dns_server.add("links.exmpl.net", "CNAME", TARGET)
    dns_server.add("exmpl.net", "CAA", '0 issue "digicert.com"')
    # The climb goes up links.exmpl.com's parents, not links.exmpl.net's.
    assert (await check(dns_server)).ready


async def test_critical_tag(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "letsencrypt.org"')
    dns_server.add("exmpl.com", "CAA", '128 tbs "unknown"')
    result = await check(dns_server)
    assert codes(result) == ["caa_critical_tag"]
    assert 'exmpl.com. CAA 128 tbs "unknown"' in result.problems[0].message


async def test_account_and_method_restrictions(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "letsencrypt.org; accounturi=https://x/1"')
    result = await check(dns_server, account_uri=ACCOUNT)
    assert codes(result) == ["caa_account_mismatch"]
    assert f'issue "letsencrypt.org; accounturi={ACCOUNT}"' in result.problems[0].fix
    dns_server.remove("exmpl.com", "CAA")
    dns_server.add("exmpl.com", "CAA", '0 issue "letsencrypt.org; validationmethods=dns-01"')
    result = await check(dns_server)
    assert codes(result) == ["caa_validation_method"]
    assert 'issue "letsencrypt.org; validationmethods=dns-01,http-01"' in result.problems[0].fix


async def test_malformed_value_meant_for_us(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "letsencrypt.org; accounturi"')
    result = await check(dns_server)
    assert codes(result) == ["caa_malformed"]


async def test_points_elsewhere_comes_before_caa(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "shop.cdn.example")
    dns_server.add("exmpl.com", "CAA", '0 issue "digicert.com"')
    result = await check(dns_server)
    assert result.state is State.POINTS_ELSEWHERE
    assert codes(result) == ["cname_points_elsewhere", "caa_not_authorized"]
    assert f"{NAME}. CNAME {TARGET}." in result.problems[0].fix


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("nothing", "name_not_found"),
        ("txt", "cname_missing"),
        ("cdn", "addresses_not_ours"),
        ("loop", "cname_loop"),
    ],
)
async def test_cname_problem_codes(dns_server: LocalDNSServer, setup: str, code: str) -> None:
    if setup == "txt":
        dns_server.add(NAME, "TXT", '"hello"')
    elif setup == "cdn":
        dns_server.add(NAME, "A", "104.16.0.1")
    elif setup == "loop":
        dns_server.add(NAME, "CNAME", "b.exmpl.com")
        dns_server.add("b.exmpl.com", "CNAME", NAME)
    result = await check(dns_server)
    assert (result.state, codes(result)) == (State.POINTS_ELSEWHERE, [code])


async def test_apex_flattened_to_the_edge_is_ready(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "A", "192.0.2.10")
    assert (await check(dns_server, "exmpl.com")).ready


async def test_dns_errors(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.set_servfail("exmpl.com", "CAA")
    result = await check(dns_server)
    assert (result.state, codes(result)) == (State.DNS_ERROR, ["caa_lookup_failed"])
    assert result.caa is not None and not result.caa.permits
    dns_server.clear_failures()
    dns_server.set_timeout(NAME, "A")
    result = await check(dns_server, timeout=0.2)
    assert (result.state, codes(result)) == (State.DNS_ERROR, ["dns_timeout"])


async def test_caa_refusal_outranks_a_failed_cname_lookup(dns_server: LocalDNSServer) -> None:
    dns_server.set_servfail(NAME, "A")
    dns_server.add("exmpl.com", "CAA", '0 issue "digicert.com"')
    result = await check(dns_server)
    assert (result.state, codes(result)) == (
        State.CAA_BLOCKED,
        ["dns_servfail", "caa_not_authorized"],
    )


async def test_invalid_name(dns_server: LocalDNSServer) -> None:
    result = await check(dns_server, "bad..exmpl.com")
    assert (result.state, result.ready, result.cname, result.caa) == (
        State.INVALID,
        False,
        None,
        None,
    )
    assert dns_server.query_count == 0
    assert result.to_json()["cname"] is None


async def test_several_cas_readiness_follows_the_first(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "pki.goog"')
    result = await check(dns_server, ca_domains=("letsencrypt.org", "pki.goog"))
    assert not result.ready
    assert result.caa is not None and result.caa.permitted_cas == ("pki.goog",)
    result = await check(dns_server, ca_domains=("pki.goog", "letsencrypt.org"))
    assert result.ready


async def test_shared_resolver_caches_across_names(dns_server: LocalDNSServer) -> None:
    config = config_for(dns_server)
    resolver = Resolver([dns_server.nameserver], timeout=2)
    for i in range(10):
        dns_server.add(f"links.shop{i}.com", "CNAME", TARGET)
    for i in range(10):
        assert (await check_domain(f"links.shop{i}.com", config, resolver)).ready
    # Per name: A, CAA at the name, CAA at the registrable domain; "com" once.
    assert dns_server.query_count == 10 * 3 + 1


async def test_json_shape(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "digicert.com"')
    document = (await check(dns_server)).to_json()
    json.dumps(document)  # serializable as is
    assert document["domain"] == NAME
    assert document["ready"] is False
    assert document["state"] == "caa_blocked"
    assert document["cname"]["ok"] is True
    assert document["cname"]["chain"] == [NAME, TARGET]
    assert isinstance(document["cname"]["found"], str)
    assert document["caa"]["permits"] is False
    assert document["caa"]["permitted_cas"] == []
    assert document["caa"]["relevant_name"] == "exmpl.com"
    assert document["caa"]["records"] == ['exmpl.com. CAA 0 issue "digicert.com"']
    assert [set(p) for p in document["problems"]] == [{"code", "message", "fix"}]


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="at least one CNAME target"):
        CheckConfig()
    with pytest.raises(ValueError, match="not an IP address"):
        CheckConfig(cname_targets=(TARGET,), edge_addresses=("nope",))
    with pytest.raises(ValueError, match="not one string"):
        CheckConfig(cname_targets=TARGET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nameserver"):
        CheckConfig(cname_targets=(TARGET,), nameservers=("resolver.example",))
    with pytest.raises(ValueError, match="at least one CA domain"):
        CheckConfig(cname_targets=(TARGET,), ca_domains=())
    config = CheckConfig(cname_targets=("Track.Platform.Example.",), edge_addresses=("::0:1",))
    assert (config.cname_targets, config.edge_addresses) == ((TARGET,), ("::1",))


async def test_with_several_cas_any_permitted_one_makes_the_domain_ready(
    dns_server: LocalDNSServer,
) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "pki.goog"')
    cas = ("letsencrypt.org", "pki.goog")
    first_only = await check(dns_server, ca_domains=cas)
    assert (first_only.state, codes(first_only)) == (State.CAA_BLOCKED, ["caa_not_authorized"])
    either = await check(dns_server, ca_domains=cas, any_ca=True)
    assert (either.state, either.problems) == (State.OK, ())
    assert either.caa is not None and either.caa.permitted_cas == ("pki.goog",)
    neither = await check(dns_server, ca_domains=("letsencrypt.org", "sectigo.com"), any_ca=True)
    assert neither.state is State.CAA_BLOCKED
