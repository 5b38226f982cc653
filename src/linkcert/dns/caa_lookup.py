"""Find the CAA set that applies to a name (RFC 8659 section 3), then judge it for each CA.

The relevant set is the first non-empty one found at the name, then at its parent, and so on up
to, but not including, the root. The resolver follows aliases for each lookup, but the climb
goes up the *original* name's parents. A lookup that fails is never read as an empty set: the
result is then a `CaaLookupFailure`, which a CA would also treat as a refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import dns.name
from dns.rdtypes.ANY.CAA import CAA

from linkcert.dns.caa import CaaProperty, Decision, evaluate
from linkcert.dns.resolver import Lookup, Outcome, Resolver


@dataclass(frozen=True)
class RelevantSet:
    """The CAA set that applies; empty (and `name` None) when no name up the tree has one."""

    name: str | None  # the name of the climb where the set was found
    properties: tuple[CaaProperty, ...] = ()
    path: tuple[str, ...] = ()  # `name`, then the aliases followed to the set's owner

    @property
    def owner(self) -> str | None:
        """The name that actually holds the records (differs from `name` behind an alias)."""
        return self.path[-1] if self.path else None


@dataclass(frozen=True)
class CaaLookupFailure:
    """A CAA lookup that failed where its answer mattered."""

    name: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True)
class CaaFinding:
    """The relevant set (or why it is unknown) and the decision for each configured CA."""

    relevant: RelevantSet | None
    failure: CaaLookupFailure | None
    decisions: tuple[Decision, ...]

    @property
    def permits(self) -> bool:
        """Whether the first (preferred) CA may issue."""
        return self.failure is None and bool(self.decisions) and self.decisions[0].permitted

    @property
    def permitted_cas(self) -> tuple[str, ...]:
        if self.failure is not None:
            return ()
        return tuple(decision.ca_domain for decision in self.decisions if decision.permitted)

    @property
    def relevant_name(self) -> str | None:
        return self.relevant.name if self.relevant else None

    @property
    def records(self) -> tuple[str, ...]:
        if self.relevant is None:
            return ()
        return tuple(prop.to_zone() for prop in self.relevant.properties)


async def find_relevant_set(resolver: Resolver, name: str) -> RelevantSet | CaaLookupFailure:
    """Ask at the name; only if its set is empty, ask every parent at once and take the closest.

    Asking the parents together costs a query or two more than climbing one step at a time when
    a near parent holds the set, but the cache absorbs those (top-level domains are shared by
    many names) and the check waits for one round trip instead of one per label.
    """
    at_name = await resolver.lookup(name, "CAA")
    found = _read(at_name)
    if found is not None:
        return found
    parents = _parents(name)
    for lookup in await asyncio.gather(*(resolver.lookup(parent, "CAA") for parent in parents)):
        found = _read(lookup)
        if found is not None:
            return found
    return RelevantSet(None)


async def check_caa(
    resolver: Resolver,
    name: str,
    ca_domains: Sequence[str],
    *,
    account_uri: str | None = None,
    challenge_method: str = "http-01",
) -> CaaFinding:
    relevant = await find_relevant_set(resolver, name)
    if isinstance(relevant, CaaLookupFailure):
        return CaaFinding(None, relevant, ())
    decisions = tuple(
        evaluate(
            relevant.properties,
            ca_domain,
            account_uri=account_uri,
            challenge_method=challenge_method,
        )
        for ca_domain in ca_domains
    )
    return CaaFinding(relevant, None, decisions)


def _read(lookup: Lookup) -> RelevantSet | CaaLookupFailure | None:
    """The set this lookup found, the failure it met, or None for an empty set."""
    if lookup.failed:
        return CaaLookupFailure(lookup.name, lookup.outcome, lookup.detail)
    if lookup.outcome is not Outcome.ANSWER:
        return None
    owner = lookup.canonical_name
    properties = tuple(
        CaaProperty(owner, record.flags, record.tag, record.value)
        for record in lookup.records
        if isinstance(record, CAA)
    )
    return RelevantSet(lookup.name, properties, lookup.names) if properties else None


def _parents(name: str) -> list[str]:
    """The parents of `name`, closest first, down to the top-level domain (never the root)."""
    parents = []
    current = dns.name.from_text(name, origin=dns.name.root).parent()
    while current != dns.name.root:
        parents.append(current.to_text(omit_final_dot=True).lower())
        current = current.parent()
    return parents
