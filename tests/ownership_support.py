"""Helpers for tests that need a name to be an account's, as DNS would prove it.

`prove` runs the worker's own settling step with a verdict naming the claiming account, for
tests about something else than DNS; `point_at_account` writes the records a customer would
(the account's own CNAME target, served like the platform's wildcard record), for tests with
a real DNS server and worker.
"""

from __future__ import annotations

from sqlalchemy import select

from linkcert.domains import find_account
from linkcert.ownership_store import live_claims, settle
from linkcert.states import DnsState
from linkcert.store import Domain, Store, utcnow
from linkcert.testbed.localdns import LocalDNSServer
from linkcert.worker.lifecycle import DnsVerdict


def prove(store: Store, name: str, account: str | int | None = None) -> None:
    """Make `name` the account's (the oldest claimant's if none is given), as the worker does
    once DNS names it."""
    with store.session() as session:
        domain = session.scalar(select(Domain).where(Domain.name == name))
        assert domain is not None, f"{name} was never saved"
        if account is None:
            claims = live_claims(session, domain, utcnow())
            assert claims, f"nobody claims {name}"
            label = claims[0].account.dns_label
        else:
            label = find_account(session, account).dns_label
        verdict = DnsVerdict(DnsState.OK, labels=frozenset({label}), shared=False)
        assert settle(session, domain, verdict, utcnow()), f"{name} was not proven"


def account_target(store: Store, account: str | int, target: str) -> str:
    with store.session() as session:
        return f"{find_account(session, account).dns_label}.{target}"


def point_at_account(
    dns: LocalDNSServer, store: Store, account: str | int, name: str, target: str
) -> str:
    """`name` CNAME the account's own target, which leads on to the platform's `target`;
    returns the account's target."""
    own = account_target(store, account, target)
    dns.add(own, "CNAME", target + ".")
    dns.add(name, "CNAME", own + ".")
    return own
