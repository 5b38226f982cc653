"""Finding the relevant CAA set in real DNS (LocalDNSServer) and judging it per CA."""

from __future__ import annotations

from linkcert.dns.caa import Reason
from linkcert.dns.caa_lookup import (
    CaaLookupFailure,
    RelevantSet,
    check_caa,
    find_relevant_set,
)
from linkcert.dns.resolver import Outcome, Resolver
from linkcert.testbed.localdns import LocalDNSServer

NAME = "links.exmpl.com"
LE = "letsencrypt.org"


def resolver_for(server: LocalDNSServer, timeout: float = 2.0) -> Resolver:
    return Resolver([server.nameserver], timeout=timeout)


async def relevant(server: LocalDNSServer, name: str = NAME) -> RelevantSet:
    found = await find_relevant_set(resolver_for(server), name)
    assert isinstance(found, RelevantSet)
    return found


async def test_no_caa_anywhere_is_an_empty_set(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "track.platform.example")
    found = await relevant(dns_server)
    assert (found.name, found.properties) == (None, ())


async def test_set_at_the_name(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CAA", '0 issue "letsencrypt.org"')
    dns_server.add("exmpl.com", "CAA", '0 issue "digicert.com"')
    found = await relevant(dns_server)
    assert (found.name, found.owner) == (NAME, NAME)
    assert [p.to_zone() for p in found.properties] == [
        'links.exmpl.com. CAA 0 issue "letsencrypt.org"'
    ]
    # The name's own set was not empty, so no parent was asked.
    assert dns_server.query_count == 1


async def test_set_at_the_parent_and_grandparent(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.shop.exmpl.com", "A", "192.0.2.1")
    dns_server.add("exmpl.com", "CAA", '0 issue "digicert.com"')
    found = await relevant(dns_server, "links.shop.exmpl.com")
    assert found.name == "exmpl.com"
    dns_server.add("shop.exmpl.com", "CAA", '0 issue "letsencrypt.org"')
    found = await relevant(dns_server, "links.shop.exmpl.com")
    assert found.name == "shop.exmpl.com"


async def test_set_at_the_top_level_domain(dns_server: LocalDNSServer) -> None:
    dns_server.add("com", "CAA", '0 issue "pki.goog"')
    found = await relevant(dns_server, "links.nothing-here.com")
    assert found.name == "com"


async def test_set_behind_a_cname_is_the_targets(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "track.platform.example")
    dns_server.add("track.platform.example", "CAA", '0 issue "letsencrypt.org"')
    dns_server.add("exmpl.com", "CAA", '0 issue "digicert.com"')
    found = await relevant(dns_server)
    assert (found.name, found.owner) == (NAME, "track.platform.example")
    assert found.path == (NAME, "track.platform.example")


async def test_climb_follows_the_original_names_parents(dns_server: LocalDNSServer) -> None:
    # The CNAME target's parent has a set; the customer's parent does not: no set applies.
    dns_server.add(NAME, "CNAME", "track.platform.example")
    dns_server.add("platform.example", "CAA", '0 issue "digicert.com"')
    found = await relevant(dns_server)
    assert found.name is None


async def test_set_behind_a_dname(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "DNAME", "exmpl.net")
    dns_server.add("links.exmpl.net", "CAA", '0 issue "digicert.com"')
    found = await relevant(dns_server)
    assert (found.name, found.owner) == (NAME, "links.exmpl.net")


async def test_parent_behind_a_cname(dns_server: LocalDNSServer) -> None:
    dns_server.add("shop.exmpl.com", "CNAME", "shops.hosting.example")
    dns_server.add("shops.hosting.example", "CAA", '0 issue "sectigo.com"')
    dns_server.add("links.shop.exmpl.com", "A", "192.0.2.1")
    found = await relevant(dns_server, "links.shop.exmpl.com")
    assert (found.name, found.owner) == ("shop.exmpl.com", "shops.hosting.example")


async def test_nxdomain_and_nodata_keep_climbing(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "CAA", '0 issue "letsencrypt.org"')
    dns_server.add("shop.exmpl.com", "TXT", '"exists, without CAA"')
    found = await relevant(dns_server, "links.nothing.shop.exmpl.com")
    assert found.name == "exmpl.com"


async def test_failure_at_the_name_is_not_permission(dns_server: LocalDNSServer) -> None:
    dns_server.set_servfail(NAME, "CAA")
    found = await find_relevant_set(resolver_for(dns_server), NAME)
    assert isinstance(found, CaaLookupFailure)
    assert (found.name, found.outcome) == (NAME, Outcome.SERVFAIL)


async def test_timeout_at_a_parent_is_not_permission(dns_server: LocalDNSServer) -> None:
    dns_server.set_timeout("exmpl.com", "CAA")
    dns_server.add("com", "CAA", '0 issue "letsencrypt.org"')
    found = await find_relevant_set(resolver_for(dns_server, timeout=0.2), NAME)
    assert isinstance(found, CaaLookupFailure)
    assert (found.name, found.outcome) == ("exmpl.com", Outcome.TIMEOUT)


async def test_failure_above_the_relevant_set_does_not_matter(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "CAA", '0 issue "letsencrypt.org"')
    dns_server.set_servfail("com")
    found = await relevant(dns_server)
    assert found.name == "exmpl.com"


async def test_malformed_caa_data_is_a_lookup_failure(dns_server: LocalDNSServer) -> None:
    # Flags 0, a tag length running past the end of the record: no client can read this.
    dns_server.add(NAME, "CAA", r"\# 3 000963")
    found = await find_relevant_set(resolver_for(dns_server, timeout=0.2), NAME)
    assert isinstance(found, CaaLookupFailure)
    assert (found.name, found.outcome) == (NAME, Outcome.SERVFAIL)
    assert "cannot be parsed" in found.detail


async def test_a_thousand_records_come_over_tcp(dns_server: LocalDNSServer) -> None:
    for i in range(999):
        dns_server.add("exmpl.com", "CAA", f'0 issue "ca{i:03}.example"')
    dns_server.add("exmpl.com", "CAA", '0 issue "letsencrypt.org"')
    finding = await check_caa(resolver_for(dns_server), NAME, [LE])
    assert finding.relevant is not None and len(finding.relevant.properties) == 1000
    assert finding.permits
    assert dns_server.tcp_query_count == 1


async def test_several_cas(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "CAA", '0 issue "pki.goog"')
    dns_server.add("exmpl.com", "CAA", '0 issue "sectigo.com"')
    finding = await check_caa(resolver_for(dns_server), NAME, [LE, "pki.goog", "sectigo.com"])
    assert not finding.permits
    assert finding.permitted_cas == ("pki.goog", "sectigo.com")
    assert [d.reason for d in finding.decisions] == [
        Reason.NOT_AUTHORIZED,
        Reason.AUTHORIZED,
        Reason.AUTHORIZED,
    ]


async def test_mixed_case_tags_and_critical_flags(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CAA", '128 IsSue "letsencrypt.org"')
    dns_server.add(NAME, "CAA", '0 IODEF "mailto:security@exmpl.com"')
    dns_server.add(NAME, "CAA", '0 CustomTag "ignored because not critical"')
    finding = await check_caa(resolver_for(dns_server), NAME, [LE])
    assert finding.permits
    dns_server.add(NAME, "CAA", '128 CustomCritical "x"')
    finding = await check_caa(resolver_for(dns_server), NAME, [LE])
    assert not finding.permits
    assert finding.decisions[0].reason is Reason.CRITICAL_UNKNOWN


async def test_sets_that_do_not_restrict(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CAA", '0 issuewild "digicert.com"')
    dns_server.add("iodef.exmpl.com", "CAA", '0 iodef "mailto:x@exmpl.com"')
    resolver = resolver_for(dns_server)
    for name in (NAME, "iodef.exmpl.com"):
        finding = await check_caa(resolver, name, [LE])
        assert finding.permits, name
        assert finding.decisions[0].reason is Reason.NO_ISSUE_PROPERTY


async def test_parameters_through_dns(dns_server: LocalDNSServer) -> None:
    account = "https://acme-v02.api.letsencrypt.org/acme/acct/42"
    dns_server.add(NAME, "CAA", f'0 issue "letsencrypt.org; accounturi={account}"')
    dns_server.add("m.exmpl.com", "CAA", '0 issue "letsencrypt.org; validationmethods=dns-01"')
    resolver = resolver_for(dns_server)
    assert (await check_caa(resolver, NAME, [LE], account_uri=account)).permits
    assert not (await check_caa(resolver, NAME, [LE])).permits
    assert not (await check_caa(resolver, "m.exmpl.com", [LE])).permits
    assert (await check_caa(resolver, "m.exmpl.com", [LE], challenge_method="dns-01")).permits


async def test_issue_semicolon_through_dns(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "CAA", '0 issue ";"')
    finding = await check_caa(resolver_for(dns_server), NAME, [LE, "digicert.com"])
    assert finding.permitted_cas == ()
    assert finding.records == ('exmpl.com. CAA 0 issue ";"',)


async def test_malformed_issue_value_through_dns(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CAA", '0 issue "letsencrypt.org; validationmethods"')
    finding = await check_caa(resolver_for(dns_server), NAME, [LE])
    assert finding.decisions[0].reason is Reason.MALFORMED


async def test_shared_parents_cost_one_query_across_names(dns_server: LocalDNSServer) -> None:
    resolver = resolver_for(dns_server)
    for i in range(20):
        dns_server.add(f"links.shop{i}.com", "CNAME", "track.platform.example")
    for i in range(20):
        await find_relevant_set(resolver, f"links.shop{i}.com")
    # Per name: the name and its registrable domain; "com" was asked once for all.
    assert dns_server.query_count == 20 * 2 + 1
