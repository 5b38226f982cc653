"""Where a name points: alias chains, loops, missing names, failures, flattened apexes."""

from __future__ import annotations

from linkcert.dns.cname import CnameStatus, check_cname
from linkcert.dns.resolver import MAX_ALIAS_HOPS, Resolver
from linkcert.testbed.localdns import LocalDNSServer

NAME = "links.exmpl.com"
TARGET = "track.platform.example"
EDGES = ("192.0.2.10", "2001:db8::10")


async def cname_of(
    server: LocalDNSServer,
    name: str = NAME,
    edges: tuple[str, ...] = EDGES,
    dns_timeout: float = 2.0,
) -> tuple[CnameStatus, tuple[str, ...], str]:
    resolver = Resolver([server.nameserver], timeout=dns_timeout)
    finding = await check_cname(resolver, name, [TARGET, "track2.platform.example"], edges)
    return finding.status, finding.chain, finding.found


async def test_direct_cname_to_the_target(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add(TARGET, "A", "192.0.2.10")
    status, chain, found = await cname_of(dns_server)
    assert (status, chain) == (CnameStatus.REACHES_TARGET, (NAME, TARGET))
    assert found == f"CNAME {NAME} → {TARGET}"
    assert dns_server.query_count == 1  # the A lookup carries the whole chain


async def test_chain_through_other_names_to_a_target(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "links.exmpl.net")
    dns_server.add("links.exmpl.net", "CNAME", "TRACK2.platform.example.")
    status, chain, _ = await cname_of(dns_server)
    assert status is CnameStatus.REACHES_TARGET
    assert chain == (NAME, "links.exmpl.net", "track2.platform.example")


async def test_target_that_does_not_resolve_still_counts(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)  # the platform's own records are not this check's job
    status, _, _ = await cname_of(dns_server)
    assert status is CnameStatus.REACHES_TARGET


async def test_cname_elsewhere(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "shop.cdn.example")
    dns_server.add("shop.cdn.example", "A", "198.51.100.7")
    status, chain, found = await cname_of(dns_server)
    assert (status, chain) == (CnameStatus.ELSEWHERE, (NAME, "shop.cdn.example"))
    assert found == f"CNAME {NAME} → shop.cdn.example, which has addresses 198.51.100.7"


async def test_cname_to_a_name_that_does_not_exist(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "typo.platform.example")
    status, chain, _ = await cname_of(dns_server)
    assert (status, chain) == (CnameStatus.ELSEWHERE, (NAME, "typo.platform.example"))


async def test_nxdomain(dns_server: LocalDNSServer) -> None:
    status, chain, found = await cname_of(dns_server)
    assert (status, chain, found) == (CnameStatus.NOT_FOUND, (NAME,), "no such name (NXDOMAIN)")


async def test_nodata(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "TXT", '"verification"')
    status, _, _ = await cname_of(dns_server)
    assert status is CnameStatus.NO_RECORD
    dns_server.clear()
    dns_server.add("deeper.links.exmpl.com", "A", "192.0.2.1")  # NAME is an empty non-terminal
    status, _, _ = await cname_of(dns_server)
    assert status is CnameStatus.NO_RECORD


async def test_loop(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "b.exmpl.com")
    dns_server.add("b.exmpl.com", "CNAME", NAME)
    status, chain, found = await cname_of(dns_server)
    assert (status, chain) == (CnameStatus.LOOP, (NAME, "b.exmpl.com", NAME))
    assert found == f"CNAME loop {NAME} → b.exmpl.com → {NAME}"


async def test_too_long_chain(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "hop1.exmpl.com")
    for hop in range(1, MAX_ALIAS_HOPS + 2):
        dns_server.add(f"hop{hop}.exmpl.com", "CNAME", f"hop{hop + 1}.exmpl.com")
    dns_server.add(f"hop{MAX_ALIAS_HOPS + 2}.exmpl.com", "CNAME", TARGET)
    status, _, _ = await cname_of(dns_server)
    assert status is CnameStatus.TOO_LONG


async def test_servfail(dns_server: LocalDNSServer) -> None:
    dns_server.set_servfail(NAME)
    status, _, found = await cname_of(dns_server)
    assert status is CnameStatus.SERVFAIL
    assert "SERVFAIL" in found


async def test_timeout(dns_server: LocalDNSServer) -> None:
    dns_server.set_timeout(NAME)
    status, _, found = await cname_of(dns_server, dns_timeout=0.2)
    assert status is CnameStatus.TIMEOUT
    assert "0.2 s" in found


async def test_apex_with_exactly_the_edge_addresses(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "A", "192.0.2.10")
    dns_server.add("exmpl.com", "AAAA", "2001:db8:0::10")
    status, _, found = await cname_of(dns_server, "exmpl.com")
    assert status is CnameStatus.EDGE_ADDRESSES
    assert found == "addresses 192.0.2.10, 2001:db8::10 (the platform's edge)"


async def test_apex_with_only_some_edge_addresses(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "A", "192.0.2.10")
    status, _, found = await cname_of(dns_server, "exmpl.com")
    assert status is CnameStatus.OTHER_ADDRESSES
    assert found == "addresses 192.0.2.10"


async def test_apex_behind_a_cdn(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "A", "104.16.0.1")
    dns_server.add("exmpl.com", "A", "192.0.2.10")
    dns_server.add("exmpl.com", "AAAA", "2001:db8::10")
    status, _, found = await cname_of(dns_server, "exmpl.com")
    assert status is CnameStatus.OTHER_ADDRESSES
    assert found == "addresses 104.16.0.1, 192.0.2.10, 2001:db8::10"


async def test_addresses_are_not_enough_without_edge_addresses(
    dns_server: LocalDNSServer,
) -> None:
    dns_server.add("exmpl.com", "A", "192.0.2.10")
    status, _, _ = await cname_of(dns_server, "exmpl.com", edges=())
    assert status is CnameStatus.OTHER_ADDRESSES


async def test_ipv6_only_name_is_described(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "AAAA", "2001:db8::99")
    status, _, found = await cname_of(dns_server, edges=("192.0.2.10",))
    assert (status, found) == (CnameStatus.OTHER_ADDRESSES, "addresses 2001:db8::99")


async def test_aaaa_failure_matters_only_when_it_could_change_the_verdict(
    dns_server: LocalDNSServer,
) -> None:
    dns_server.add("exmpl.com", "A", "192.0.2.10")
    dns_server.set_servfail("exmpl.com", "AAAA")
    status, _, _ = await cname_of(dns_server, "exmpl.com")
    assert status is CnameStatus.SERVFAIL
    dns_server.add("other.exmpl.com", "A", "198.51.100.1")
    dns_server.set_servfail("other.exmpl.com", "AAAA")
    status, _, _ = await cname_of(dns_server, "other.exmpl.com")
    assert status is CnameStatus.OTHER_ADDRESSES
