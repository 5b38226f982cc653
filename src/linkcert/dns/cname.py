"""Does a customer's name point at the platform? Follow its alias chain and compare addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from linkcert.dns.resolver import MAX_ALIAS_HOPS, Lookup, Outcome, Resolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CnameStatus(StrEnum):
    REACHES_TARGET = "reaches_target"  # the alias chain reaches a platform tracking host
    EDGE_ADDRESSES = "edge_addresses"  # no alias to us, but exactly our edge addresses (flattened)
    NOT_FOUND = "not_found"  # the name does not exist (NXDOMAIN)
    NO_RECORD = "no_record"  # the name exists but has no CNAME and no address
    ELSEWHERE = "elsewhere"  # the alias chain ends at a name that is not ours
    OTHER_ADDRESSES = "other_addresses"  # no alias; addresses that are not (all) ours
    LOOP = "loop"  # the alias chain comes back on itself
    TOO_LONG = "too_long"  # more than MAX_ALIAS_HOPS aliases
    SERVFAIL = "servfail"  # the lookup failed
    TIMEOUT = "timeout"  # the lookup got no answer


@dataclass(frozen=True)
class CnameFinding:
    """What the name's DNS says about where it points."""

    status: CnameStatus
    chain: tuple[str, ...]  # the name, then each alias target in order
    addresses: tuple[str, ...] = ()  # A and AAAA at the end of the chain, when looked at
    detail: str = ""  # for failures: what failed
    # Account labels met on the way: `abc` for a hop `abc.<platform target>` (an account's own
    # target, served by the platform's wildcard record).
    labels: tuple[str, ...] = ()
    # Whether the chain reaches the shared platform target itself (or the edge's addresses)
    # without an account's own target on the way: the platform was chosen, but no account.
    shared: bool = False

    @property
    def ok(self) -> bool:
        return self.status in (CnameStatus.REACHES_TARGET, CnameStatus.EDGE_ADDRESSES)

    @property
    def final_name(self) -> str:
        return self.chain[-1]

    @property
    def found(self) -> str:
        """A short description of what DNS holds, for people."""
        arrows = " → ".join(self.chain)
        addresses = ", ".join(self.addresses)
        match self.status:
            case CnameStatus.REACHES_TARGET:
                return f"CNAME {arrows}"
            case CnameStatus.EDGE_ADDRESSES:
                return f"addresses {addresses} (the platform's edge)"
            case CnameStatus.NOT_FOUND:
                return "no such name (NXDOMAIN)"
            case CnameStatus.NO_RECORD:
                return "no CNAME and no address record"
            case CnameStatus.ELSEWHERE:
                ending = f", which has addresses {addresses}" if addresses else ""
                return f"CNAME {arrows}{ending}"
            case CnameStatus.OTHER_ADDRESSES:
                return f"addresses {addresses}"
            case CnameStatus.LOOP:
                return f"CNAME loop {arrows}"
            case CnameStatus.TOO_LONG:
                return f"CNAME chain longer than {MAX_ALIAS_HOPS} steps"
            case CnameStatus.SERVFAIL:
                return f"DNS lookup failed ({self.detail})" if self.detail else "DNS lookup failed"
            case CnameStatus.TIMEOUT:
                return f"DNS lookup timed out ({self.detail})" if self.detail else "timed out"


async def check_cname(
    resolver: Resolver,
    name: str,
    targets: Iterable[str],
    edge_addresses: Iterable[str] = (),
) -> CnameFinding:
    """Follow `name`'s aliases; it is ours if they reach a target, or if its addresses are ours.

    One A lookup gives the whole chain (the resolver follows it); AAAA is asked only when the
    chain does not reach a target, to compare addresses or to say what the name points at.
    """
    target_names = {target.lower().rstrip(".") for target in targets}
    edges = {ipaddress.ip_address(address) for address in edge_addresses}
    ipv4 = await resolver.lookup(name, "A")
    if ipv4.failed:
        return _failure(ipv4)
    chain = ipv4.names
    labels = tuple(
        dict.fromkeys(label for hop in chain[1:] if (label := _label_under(hop, target_names)))
    )
    reaches = any(hop in target_names for hop in chain[1:])
    if reaches or labels:
        # Through an account's own target (which the wildcard record may lead on to the shared
        # one), the chain names that account; straight to the shared target, none.
        shared = reaches and not labels
        return CnameFinding(CnameStatus.REACHES_TARGET, chain, labels=labels, shared=shared)
    if ipv4.outcome is Outcome.NXDOMAIN:
        status = CnameStatus.ELSEWHERE if ipv4.chain else CnameStatus.NOT_FOUND
        return CnameFinding(status, chain)
    ipv6 = await resolver.lookup(name, "AAAA")
    v4 = _addresses(ipv4)
    if ipv6.failed:
        if edges and v4 <= edges:
            return _failure(ipv6)  # the missing half could make the set ours or not
        v6: set[IPAddress] = set()
    else:
        v6 = _addresses(ipv6)
    found = v4 | v6
    shown = tuple(str(address) for address in sorted(found, key=_address_order))
    if edges and found == edges:
        return CnameFinding(CnameStatus.EDGE_ADDRESSES, chain, shown, shared=True)
    if ipv4.chain:
        return CnameFinding(CnameStatus.ELSEWHERE, chain, shown)
    if found:
        return CnameFinding(CnameStatus.OTHER_ADDRESSES, chain, shown)
    return CnameFinding(CnameStatus.NO_RECORD, chain)


def _label_under(host: str, targets: set[str]) -> str | None:
    """`abc` for `abc.track.example` when `track.example` is a target; else None."""
    first, _, rest = host.partition(".")
    return first if first and rest in targets else None


def _failure(lookup: Lookup) -> CnameFinding:
    if lookup.outcome is Outcome.BROKEN_CHAIN:
        status = CnameStatus.LOOP if lookup.loops else CnameStatus.TOO_LONG
        return CnameFinding(status, lookup.names, detail=lookup.detail)
    status = CnameStatus.TIMEOUT if lookup.outcome is Outcome.TIMEOUT else CnameStatus.SERVFAIL
    return CnameFinding(status, lookup.names, detail=lookup.detail)


def _addresses(lookup: Lookup) -> set[IPAddress]:
    return {
        ipaddress.ip_address(record.address)
        for record in lookup.records
        if isinstance(record, A | AAAA)
    }


def _address_order(address: IPAddress) -> tuple[int, int]:
    return address.version, int(address)
