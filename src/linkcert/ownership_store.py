"""The worker's side of ownership: settle which account's claim DNS proves (see ownership.py).

Run inside the worker's transaction for one leased domain, right after its DNS check.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from linkcert.domains import record_event
from linkcert.ownership import (
    CLAIM_LOST,
    CLAIM_PENDING,
    PROOF_DNS,
    PROOF_LEGACY,
    PROOF_OPERATOR,
    dcv_label,
    lost_problem,
)
from linkcert.store import Account, DomainClaim
from linkcert.store.models import Domain
from linkcert.store.signals import CERTIFICATES, announce

CLAIM_RECHECK_MIN = timedelta(seconds=5)
CLAIM_RECHECK_MAX = timedelta(hours=1)

if TYPE_CHECKING:
    from linkcert.worker.lifecycle import DnsVerdict


def live_claims(session: Session, domain: Domain, now: datetime) -> Sequence[DomainClaim]:
    """The claims on `domain` that have not expired, oldest first."""
    return session.scalars(
        select(DomainClaim)
        .where(DomainClaim.domain_id == domain.id, DomainClaim.expires_at > now)
        .order_by(DomainClaim.created_at, DomainClaim.id)
    ).all()


def claims_recheck_at(session: Session, domain: Domain, now: datetime) -> datetime | None:
    """When the live claims on `domain` are next due a DNS check, or None without claims.

    A new claim is looked at often (a customer who just saved goes to set up DNS next), then
    less and less: a tenth of the claim's age, from 5 seconds to an hour.
    """
    claims = live_claims(session, domain, now)
    if not claims:
        return None
    newest = max(claim.created_at for claim in claims)
    delay = min(max((now - newest) / 10, CLAIM_RECHECK_MIN), CLAIM_RECHECK_MAX)
    return now + delay


def dcv_label_of(account: Account | None, domain: Domain) -> str | None:
    """The account's `_acme-challenge` delegation label for the name (see ownership.py)."""
    if account is None or not account.dcv_secret:
        return None
    return dcv_label(account.dcv_secret, domain.name)


def owner_proven(domain: Domain, verdict: DnsVerdict) -> bool:
    """Whether DNS still shows the owner's choice of the platform."""
    owner = domain.account
    if owner is None:
        return False
    if verdict.names(owner.dns_label, dcv_label_of(owner, domain) if verdict.dcv else None):
        return True
    # Names verified under the shared target before accounts had labels, and brand domains
    # an operator approved: the platform's shared target (or edge addresses) still counts,
    # unless DNS names an account, which then is not the owner.
    legacy = domain.proof in (PROOF_LEGACY, PROOF_OPERATOR)
    return legacy and verdict.shared and not verdict.labels


def settle(session: Session, domain: Domain, verdict: DnsVerdict, now: datetime) -> bool:
    """Give the name to the account DNS names; return whether the (new) owner is proven.

    The owner keeps the name while DNS shows its choice. Otherwise the oldest live claim whose
    account DNS names wins: the name changes hands, its link epoch goes up (so that the links
    of the previous owner stop for good) and the other claims are told they lost.
    """
    session.execute(
        delete(DomainClaim).where(DomainClaim.domain_id == domain.id, DomainClaim.expires_at <= now)
    )
    claims = live_claims(session, domain, now)
    if owner_proven(domain, verdict):
        _lose(session, domain, claims)
        return True
    winner = next(
        (
            c
            for c in claims
            if verdict.names(
                c.account.dns_label, dcv_label_of(c.account, domain) if verdict.dcv else None
            )
        ),
        None,
    )
    if winner is None:
        for claim in claims:
            claim.state = CLAIM_PENDING
            claim.problems = verdict.account_problems(
                claim.account.dns_label, dcv_label_of(claim.account, domain)
            )
        return False
    previous = domain.account
    account = session.get(Account, winner.account_id)
    assert account is not None  # a claim's account cannot be deleted while it holds the claim
    domain.account_id = account.id
    domain.account = account
    domain.proof = PROOF_DNS
    domain.wanted = True
    domain.attempts = 0
    domain.deleted_at = None
    if previous is not None:
        domain.link_epoch += 1
        domain.current_certificate_id = None
        domain.cert_state = "none"
        domain.moved_since = None
        announce(session, CERTIFICATES, domain.name)
    session.delete(winner)
    _lose(session, domain, [c for c in claims if c is not winner])
    message = f"DNS names account {account.name!r}: {domain.unicode_name} is now that account's."
    if previous is not None:
        message += " Links made for the previous account stop working."
    record_event(session, domain, "owner_proven", message, account=account.name)
    return True


def _lose(session: Session, domain: Domain, claims: Sequence[DomainClaim]) -> None:
    for claim in claims:
        if claim.state != CLAIM_LOST:
            record_event(
                session,
                domain,
                "claim_lost",
                f"The claim of account {claim.account.name!r} lost: DNS names another account.",
                account=claim.account.name,
            )
        claim.state = CLAIM_LOST
        claim.problems = [lost_problem(domain.unicode_name)]


def release(session: Session, domain: Domain) -> None:
    """The name stops being anyone's: its links end for good; saving it is a new claim."""
    domain.account_id = None
    domain.proof = None
    domain.link_epoch += 1
    announce(session, CERTIFICATES, domain.name)
