"""Asynchronous DNS lookups with typed outcomes, one retry and a small cache.

`Resolver.lookup(name, rtype)` never raises for what DNS itself does: every answer, negative
answer or failure comes back as a `Lookup` whose `outcome` says which it was, with the alias chain
the answer followed. Only bad configuration raises (`NameserverError`, `ResolverConfigError`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.SOA import SOA

from linkcert.dns.cache import TtlCache
from linkcert.hostport import HostPortError, parse_host_port

MAX_ALIAS_HOPS = 16
"""Longest alias chain followed; longer chains are reported as broken, like loops."""

DEFAULT_TIMEOUT = 5.0
_EDNS_PAYLOAD = 1232  # the 2020 DNS flag day size: big enough for most answers, safe on any path


class Outcome(StrEnum):
    """What a lookup found."""

    ANSWER = "answer"  # records of the type asked, at the end of the alias chain
    NXDOMAIN = "nxdomain"  # the name (or the end of its alias chain) does not exist
    NODATA = "nodata"  # the name exists but holds no records of that type
    SERVFAIL = "servfail"  # the server failed, refused or sent an unusable answer
    TIMEOUT = "timeout"  # no answer in time
    BROKEN_CHAIN = "broken_chain"  # the alias chain loops or is longer than MAX_ALIAS_HOPS

    @property
    def failed(self) -> bool:
        """True when the lookup says nothing about the name's records."""
        return self in (Outcome.SERVFAIL, Outcome.TIMEOUT, Outcome.BROKEN_CHAIN)


@dataclass(frozen=True)
class Alias:
    """One step of an alias chain: a CNAME (possibly synthesized from a DNAME)."""

    owner: str
    target: str


@dataclass(frozen=True)
class Lookup:
    """The outcome of asking for one type of record at one name."""

    name: str
    rtype: str
    outcome: Outcome
    chain: tuple[Alias, ...] = ()
    records: tuple[dns.rdata.Rdata, ...] = ()
    detail: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The name asked, then every alias target in order."""
        return (self.name, *(alias.target for alias in self.chain))

    @property
    def canonical_name(self) -> str:
        """The last name reached: where the records (or their absence) are."""
        return self.names[-1]

    @property
    def loops(self) -> bool:
        return bool(self.chain) and self.chain[-1].target in self.names[:-1]

    @property
    def failed(self) -> bool:
        return self.outcome.failed


class NameserverError(ValueError):
    """A nameserver string that cannot be used; the message says what form is expected."""


class ResolverConfigError(RuntimeError):
    """No nameserver to ask: the system has none configured and none was given."""


@dataclass(frozen=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_nameserver(text: str) -> Nameserver:
    """Parse "HOST", "HOST:PORT", a bare IPv6 address or "[IPV6]:PORT" (HOST is an IP address)."""
    raw = text.strip()
    if not raw:
        raise NameserverError("empty nameserver: give an IP address, optionally with :PORT")
    try:
        host, port = parse_host_port(raw, default_port=53, min_port=1)
    except HostPortError as exc:
        raise NameserverError(f"nameserver {text!r}: {exc.reason}") from None
    version = _ip_version(text, host)
    if raw.startswith("[") and version != 6:
        raise NameserverError(f"nameserver {text!r}: brackets are for IPv6 addresses only")
    return Nameserver(host, port)


def _ip_version(text: str, host: str) -> int:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        raise NameserverError(
            f"nameserver {text!r}: {host!r} is not an IP address (write IPv4 as 192.0.2.53:53, "
            "IPv6 as [2001:db8::53]:53; host names are not accepted)"
        ) from None


class Resolver:
    """Asks configured nameservers (or the system's) and caches what they say.

    The cache keeps answers and negative answers for their TTL, but never longer than
    `max_cache_ttl` seconds: a customer who has just fixed a record expects the next check to see
    it. Failures are not cached. Concurrent lookups of the same question share one query.
    """

    def __init__(
        self,
        nameservers: Sequence[str | Nameserver] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cache_size: int = 10_000,
        max_cache_ttl: float = 60.0,
        negative_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError("the DNS timeout must be a positive number of seconds")
        servers = tuple(
            server if isinstance(server, Nameserver) else parse_nameserver(server)
            for server in nameservers
        )
        self._stub = _stub_resolver(servers, timeout)
        self.nameservers = servers
        self.timeout = timeout
        self._max_cache_ttl = max_cache_ttl
        self._negative_ttl = negative_ttl
        self._cache: TtlCache[tuple[dns.name.Name, int], Lookup] = TtlCache(cache_size, clock)
        self._in_flight: dict[tuple[dns.name.Name, int], asyncio.Future[Lookup]] = {}

    async def lookup(self, name: str, rtype: str) -> Lookup:
        """Ask for `rtype` records at `name`, following aliases; never raises for DNS outcomes."""
        qname = dns.name.from_text(name, origin=dns.name.root)
        rdtype = dns.rdatatype.from_text(rtype)
        key = (qname, int(rdtype))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup_and_cache(qname, rdtype))
            self._in_flight[key] = pending
            pending.add_done_callback(lambda done: self._forget_in_flight(key, done))
        # Shielded so that one cancelled caller does not cancel the query others wait on.
        return await asyncio.shield(pending)

    def clear_cache(self) -> None:
        self._cache.clear()

    def _forget_in_flight(
        self, key: tuple[dns.name.Name, int], done: asyncio.Future[Lookup]
    ) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]

    async def _lookup_and_cache(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> Lookup:
        lookup, ttl = await self._ask(qname, rdtype)
        # Servers fail transiently often enough that one failure is not yet an answer. A UDP
        # timeout is retried over TCP: it gets through where UDP is filtered, and it shows an
        # answer that cannot be parsed (over UDP, dnspython drops those and waits on).
        if lookup.outcome is Outcome.SERVFAIL:
            lookup, ttl = await self._ask(qname, rdtype)
        elif lookup.outcome is Outcome.TIMEOUT:
            lookup, ttl = await self._ask(qname, rdtype, over_tcp=True)
        if not lookup.failed:
            self._cache.put((qname, int(rdtype)), lookup, min(ttl, self._max_cache_ttl))
        return lookup

    async def _ask(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, over_tcp: bool = False
    ) -> tuple[Lookup, float]:
        name, rtype = _text(qname), dns.rdatatype.to_text(rdtype)
        try:
            answer = await self._stub.resolve(
                qname, rdtype, tcp=over_tcp, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as error:
            response = error.kwargs.get("responses", {}).get(qname)
            if response is None:
                return Lookup(name, rtype, Outcome.NXDOMAIN), self._negative_ttl
            return self._read_response(qname, rdtype, response)
        except dns.resolver.LifetimeTimeout as error:
            return _timeout_or_bad_answer(name, rtype, error, self.timeout), 0
        except dns.resolver.NoNameservers as error:
            return self._read_failures(qname, rdtype, error.kwargs.get("errors", []))
        except dns.resolver.YXDOMAIN:
            detail = "the name becomes too long when its DNAME record is applied"
            return Lookup(name, rtype, Outcome.SERVFAIL, detail=detail), 0
        except dns.exception.DNSException as error:
            return Lookup(name, rtype, Outcome.SERVFAIL, detail=str(error)), 0
        return self._read_response(qname, rdtype, answer.response)

    def _read_response(
        self,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        response: dns.message.Message,
    ) -> tuple[Lookup, float]:
        """Classify a response by reading its alias chain and records ourselves."""
        name, rtype = _text(qname), dns.rdatatype.to_text(rdtype)
        chain, end, ttls = _follow_aliases(qname, response)
        if len(chain) > MAX_ALIAS_HOPS or (chain and end in {qname, *_owners(chain)}):
            loop_or_long = "loops" if end in {qname, *_owners(chain)} else "is too long"
            detail = f"the alias chain {loop_or_long}"
            return Lookup(name, rtype, Outcome.BROKEN_CHAIN, _aliases(chain), detail=detail), 0
        aliases = _aliases(chain)
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            ttl = min([*ttls, self._negative_cache_ttl(response)])
            return Lookup(name, rtype, Outcome.NXDOMAIN, aliases), ttl
        if rcode != dns.rcode.NOERROR:
            detail = f"the server answered {dns.rcode.to_text(rcode)}"
            return Lookup(name, rtype, Outcome.SERVFAIL, aliases, detail=detail), 0
        rrset = _find(response.answer, end, rdtype)
        if rrset is None:
            ttl = min([*ttls, self._negative_cache_ttl(response)])
            return Lookup(name, rtype, Outcome.NODATA, aliases), ttl
        return Lookup(name, rtype, Outcome.ANSWER, aliases, tuple(rrset)), min([*ttls, rrset.ttl])

    def _read_failures(
        self,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        errors: list[tuple[Any, ...]],
    ) -> tuple[Lookup, float]:
        """Make sense of dnspython's list of (server, tcp, port, error, response) failures."""
        name, rtype = _text(qname), dns.rdatatype.to_text(rdtype)
        details = []
        for server, _tcp, _port, error, response in errors:
            if isinstance(error, dns.message.ChainTooLong) and response is not None:
                # dnspython refuses long chains outright; read the chain to say loop or length.
                return self._read_response(qname, rdtype, response)
            details.append(f"{_server_text(server)} {_failure_text(error)}")
        detail = "; ".join(details) or "every nameserver failed"
        return Lookup(name, rtype, Outcome.SERVFAIL, detail=detail), 0

    def _negative_cache_ttl(self, response: dns.message.Message) -> float:
        """RFC 2308: a negative answer lives as long as its zone's SOA says, else our default."""
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                soa = rrset[0]
                assert isinstance(soa, SOA)
                return float(min(rrset.ttl, soa.minimum))
        return self._negative_ttl


def _stub_resolver(servers: tuple[Nameserver, ...], timeout: float) -> dns.asyncresolver.Resolver:
    try:
        stub = dns.asyncresolver.Resolver(configure=not servers)
    except dns.resolver.NoResolverConfiguration:
        raise ResolverConfigError(
            "this system has no nameserver configured (/etc/resolv.conf): "
            "give one or more nameservers explicitly"
        ) from None
    if servers:
        stub.nameservers = [
            dns.nameserver.Do53Nameserver(server.host, server.port) for server in servers
        ]
    stub.timeout = timeout
    # dnspython's lifetime bounds the whole lookup; give each server one full try.
    stub.lifetime = timeout * max(1, len(stub.nameservers))
    stub.use_edns(0, 0, _EDNS_PAYLOAD)
    stub.cache = None
    stub.retry_servfail = False
    return stub


def _follow_aliases(
    qname: dns.name.Name, response: dns.message.Message
) -> tuple[list[tuple[dns.name.Name, dns.name.Name]], dns.name.Name, list[int]]:
    """The CNAME steps from qname found in the answer, the name they end at, and their TTLs.

    Stops one step past MAX_ALIAS_HOPS or at the first repeated name, so callers can tell a
    loop or an overlong chain from a good one.
    """
    cnames = {
        rrset.name: rrset
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.CNAME and len(rrset) > 0
    }
    chain: list[tuple[dns.name.Name, dns.name.Name]] = []
    ttls: list[int] = []
    seen = {qname}
    current = qname
    while current in cnames and len(chain) <= MAX_ALIAS_HOPS:
        rrset = cnames[current]
        target = rrset[0].target
        chain.append((current, target))
        ttls.append(rrset.ttl)
        if target in seen:
            return chain, target, ttls
        seen.add(target)
        current = target
    return chain, current, ttls


def _find(
    section: list[dns.rrset.RRset], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype and len(rrset) > 0:
            return rrset
    return None


def _owners(chain: list[tuple[dns.name.Name, dns.name.Name]]) -> set[dns.name.Name]:
    return {owner for owner, _ in chain}


def _aliases(chain: list[tuple[dns.name.Name, dns.name.Name]]) -> tuple[Alias, ...]:
    return tuple(Alias(_text(owner), _text(target)) for owner, target in chain)


def _timeout_or_bad_answer(
    name: str, rtype: str, error: dns.resolver.LifetimeTimeout, timeout: float
) -> Lookup:
    """A timeout, unless the servers did answer but with something dnspython could not read."""
    for _server, _tcp, _port, cause, _response in error.kwargs.get("errors", []):
        if cause is not None and not isinstance(cause, dns.exception.Timeout):
            detail = f"unusable answer ({_describe(cause)})"
            return Lookup(name, rtype, Outcome.SERVFAIL, detail=detail)
    return Lookup(name, rtype, Outcome.TIMEOUT, detail=f"no answer within {timeout:g} s")


def _server_text(server: object) -> str:
    """dnspython names servers "Do53:HOST@PORT"; say HOST:PORT like everything else here."""
    match = re.fullmatch(r"Do53:(.+)@(\d+)", str(server))
    return str(Nameserver(match[1], int(match[2]))) if match else str(server)


def _failure_text(error: object) -> str:
    """What went wrong with one server, as the end of a sentence that starts with its address."""
    if isinstance(error, str):  # dnspython gives the rcode's name for unwanted rcodes
        return f"answered {error}"
    if isinstance(error, dns.exception.FormError | EOFError):
        return f"sent an answer that cannot be parsed ({_describe(error)})"
    if isinstance(error, OSError):
        return f"could not be reached ({_describe(error)})"
    return f"gave an unusable answer ({_describe(error)})"


def _describe(error: object) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()
