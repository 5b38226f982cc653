"""The resolver: nameserver strings, typed outcomes, retry, TCP fallback, cache."""

from __future__ import annotations

import asyncio

import pytest

from linkcert.dns.cache import TtlCache
from linkcert.dns.resolver import (
    MAX_ALIAS_HOPS,
    Alias,
    Nameserver,
    NameserverError,
    Outcome,
    Resolver,
    parse_nameserver,
)
from linkcert.testbed.localdns import LocalDNSServer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.53", Nameserver("192.0.2.53", 53)),
        ("192.0.2.53:5353", Nameserver("192.0.2.53", 5353)),
        (" 127.0.0.1:1 ", Nameserver("127.0.0.1", 1)),
        ("2001:db8::53", Nameserver("2001:db8::53", 53)),
        ("::1", Nameserver("::1", 53)),
        ("[2001:db8::53]:5353", Nameserver("2001:db8::53", 5353)),
        ("[::1]", Nameserver("::1", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: Nameserver) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty nameserver"),
        ("dns.exmpl.com", "is not an IP address"),
        ("dns.exmpl.com:53", "is not an IP address"),
        ("192.0.2.53:", "port must be a number from 1 to 65535"),
        ("192.0.2.53:0", "port must be a number from 1 to 65535"),
        ("192.0.2.53:65536", "port must be a number from 1 to 65535"),
        ("192.0.2.53:x", "port must be a number from 1 to 65535"),
        ("[2001:db8::53", "missing ']'"),
        ("[2001:db8::53]5353", "expected ':PORT' after ']'"),
        ("[192.0.2.53]:53", "brackets are for IPv6"),
        ("999.0.2.53", "is not an IP address"),
    ],
)
def test_parse_nameserver_errors_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(NameserverError, match=message):
        parse_nameserver(text)


def test_nameserver_prints_back_in_the_same_form() -> None:
    assert str(Nameserver("192.0.2.53", 53)) == "192.0.2.53:53"
    assert str(Nameserver("2001:db8::53", 5353)) == "[2001:db8::53]:5353"


def test_resolver_rejects_bad_configuration() -> None:
    with pytest.raises(NameserverError):
        Resolver(["not an address"])
    with pytest.raises(ValueError, match="positive"):
        Resolver(["127.0.0.1"], timeout=0)


def resolver_for(server: LocalDNSServer, timeout: float = 2.0) -> Resolver:
    return Resolver([server.nameserver], timeout=timeout)


async def test_answer_with_its_alias_chain(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "CNAME", "alias.exmpl.net")
    dns_server.add("alias.exmpl.net", "CNAME", "track.platform.example")
    dns_server.add("track.platform.example", "A", "192.0.2.10")
    lookup = await resolver_for(dns_server).lookup("Links.Exmpl.com.", "A")
    assert lookup.outcome is Outcome.ANSWER
    assert lookup.name == "links.exmpl.com"
    assert lookup.chain == (
        Alias("links.exmpl.com", "alias.exmpl.net"),
        Alias("alias.exmpl.net", "track.platform.example"),
    )
    assert lookup.canonical_name == "track.platform.example"
    assert [record.to_text() for record in lookup.records] == ["192.0.2.10"]


async def test_negative_outcomes(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "A", "192.0.2.1")
    dns_server.add("dangling.exmpl.com", "CNAME", "gone.exmpl.net")
    resolver = resolver_for(dns_server)
    assert (await resolver.lookup("nothing.exmpl.com", "A")).outcome is Outcome.NXDOMAIN
    assert (await resolver.lookup("links.exmpl.com", "AAAA")).outcome is Outcome.NODATA
    dangling = await resolver.lookup("dangling.exmpl.com", "A")
    assert dangling.outcome is Outcome.NXDOMAIN
    assert dangling.canonical_name == "gone.exmpl.net"


async def test_servfail_is_retried_once(dns_server: LocalDNSServer) -> None:
    dns_server.set_servfail("links.exmpl.com")
    lookup = await resolver_for(dns_server).lookup("links.exmpl.com", "A")
    assert lookup.outcome is Outcome.SERVFAIL
    assert lookup.failed
    assert lookup.detail == f"{dns_server.nameserver} answered SERVFAIL"
    assert dns_server.query_count == 2


async def test_timeout_is_retried_once_over_tcp(dns_server: LocalDNSServer) -> None:
    dns_server.set_timeout("links.exmpl.com")
    lookup = await resolver_for(dns_server, timeout=0.2).lookup("links.exmpl.com", "A")
    assert lookup.outcome is Outcome.TIMEOUT
    assert lookup.detail == "no answer within 0.2 s"
    assert (dns_server.query_count, dns_server.tcp_query_count) == (2, 1)


async def test_unparsable_answer_is_a_failure_that_says_so(dns_server: LocalDNSServer) -> None:
    # A CAA record whose tag length runs past its end: over UDP dnspython ignores such an
    # answer and times out; the retry over TCP tells what is wrong.
    dns_server.add("links.exmpl.com", "CAA", r"\# 3 000963")
    lookup = await resolver_for(dns_server, timeout=0.2).lookup("links.exmpl.com", "CAA")
    assert lookup.outcome is Outcome.SERVFAIL
    assert lookup.detail.startswith(f"{dns_server.nameserver} sent an answer that cannot be parsed")


async def test_unreachable_server_is_a_failure_not_an_answer() -> None:
    with LocalDNSServer() as server:
        address = server.nameserver
    lookup = await Resolver([address], timeout=0.2).lookup("links.exmpl.com", "A")
    assert lookup.outcome is Outcome.SERVFAIL
    assert f"{address} could not be reached" in lookup.detail


async def test_loops_and_long_chains_are_broken_chains(dns_server: LocalDNSServer) -> None:
    dns_server.add("a.exmpl.com", "CNAME", "b.exmpl.com")
    dns_server.add("b.exmpl.com", "CNAME", "a.exmpl.com")
    for hop in range(MAX_ALIAS_HOPS + 1):
        dns_server.add(f"long{hop}.exmpl.com", "CNAME", f"long{hop + 1}.exmpl.com")
    for hop in range(MAX_ALIAS_HOPS):
        dns_server.add(f"ok{hop}.exmpl.com", "CNAME", f"ok{hop + 1}.exmpl.com")
    dns_server.add(f"ok{MAX_ALIAS_HOPS}.exmpl.com", "A", "192.0.2.1")
    resolver = resolver_for(dns_server)
    loop = await resolver.lookup("a.exmpl.com", "A")
    assert (loop.outcome, loop.loops) == (Outcome.BROKEN_CHAIN, True)
    assert loop.names == ("a.exmpl.com", "b.exmpl.com", "a.exmpl.com")
    too_long = await resolver.lookup("long0.exmpl.com", "A")
    assert (too_long.outcome, too_long.loops) == (Outcome.BROKEN_CHAIN, False)
    longest_allowed = await resolver.lookup("ok0.exmpl.com", "A")
    assert longest_allowed.outcome is Outcome.ANSWER
    assert len(longest_allowed.chain) == MAX_ALIAS_HOPS


async def test_truncated_answers_are_fetched_over_tcp(dns_server: LocalDNSServer) -> None:
    for i in range(1000):
        dns_server.add("exmpl.com", "CAA", f'0 issue "ca{i}.example"')
    lookup = await resolver_for(dns_server).lookup("exmpl.com", "CAA")
    assert lookup.outcome is Outcome.ANSWER
    assert len(lookup.records) == 1000
    assert dns_server.tcp_query_count == 1


async def test_answers_and_negative_answers_are_cached(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "A", "192.0.2.1")
    resolver = resolver_for(dns_server)
    for _ in range(3):
        await resolver.lookup("links.exmpl.com", "A")
        await resolver.lookup("LINKS.exmpl.com", "A")
        await resolver.lookup("links.exmpl.com", "AAAA")
        await resolver.lookup("nothing.exmpl.com", "A")
    assert dns_server.query_count == 3


async def test_failures_are_not_cached(dns_server: LocalDNSServer) -> None:
    dns_server.set_servfail("links.exmpl.com")
    resolver = resolver_for(dns_server)
    await resolver.lookup("links.exmpl.com", "A")
    dns_server.clear_failures()
    dns_server.add("links.exmpl.com", "A", "192.0.2.1")
    assert (await resolver.lookup("links.exmpl.com", "A")).outcome is Outcome.ANSWER


async def test_cache_keeps_entries_no_longer_than_the_cap(dns_server: LocalDNSServer) -> None:
    now = [1000.0]
    dns_server.add("links.exmpl.com", "A", "192.0.2.1", ttl=86400)
    resolver = Resolver([dns_server.nameserver], timeout=2, max_cache_ttl=60, clock=lambda: now[0])
    await resolver.lookup("links.exmpl.com", "A")
    now[0] += 59
    await resolver.lookup("links.exmpl.com", "A")
    assert dns_server.query_count == 1
    now[0] += 2
    await resolver.lookup("links.exmpl.com", "A")
    assert dns_server.query_count == 2


async def test_negative_answers_live_as_long_as_the_soa_says(dns_server: LocalDNSServer) -> None:
    now = [0.0]
    dns_server.load_zone("@ 3600 SOA ns admin 1 7200 900 1209600 5", "exmpl.com")
    resolver = Resolver([dns_server.nameserver], timeout=2, clock=lambda: now[0])
    await resolver.lookup("nothing.exmpl.com", "A")
    now[0] += 4
    await resolver.lookup("nothing.exmpl.com", "A")
    assert dns_server.query_count == 1
    now[0] += 2
    await resolver.lookup("nothing.exmpl.com", "A")
    assert dns_server.query_count == 2


async def test_concurrent_lookups_share_one_query(dns_server: LocalDNSServer) -> None:
    dns_server.add("com", "CAA", '0 issue "letsencrypt.org"')
    resolver = resolver_for(dns_server)
    lookups = await asyncio.gather(*(resolver.lookup("com", "CAA") for _ in range(50)))
    assert {lookup.outcome for lookup in lookups} == {Outcome.ANSWER}
    assert dns_server.query_count == 1


def test_ttl_cache_is_bounded_and_expires() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(2, clock=lambda: now[0])
    cache.put("a", 1, ttl=10)
    cache.put("b", 2, ttl=10)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3, ttl=10)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 10
    assert cache.get("a") is None
    cache.put("zero", 0, ttl=0)
    assert cache.get("zero") is None
    assert len(cache) == 1
