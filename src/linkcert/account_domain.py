"""An account's link tracking domain as a customer saves it and asks for a retry.

The API (`/accounts/{id}/tracking-domain`) and the account page do the same two things:
save the domain and retry it now. Both call these use cases, which do the work, wake the
worker and refuse in one way, `Refused` (linkcert.refusals); the API answers a refusal with a
problem document, the page with the message beside its form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from linkcert.domains import (
    Conflict,
    DomainStatus,
    NotFound,
    NoTrackingDomain,
    TooEarly,
    TooManyClaims,
    domain_status_for,
    retry_now,
    save_tracking_domain,
    tracking_domain_status,
)
from linkcert.names import DomainNameError, NamePolicy
from linkcert.ownership import ClaimPolicy
from linkcert.refusals import Refused
from linkcert.store import Store

Wake = Callable[[], None]


def account_not_found(account_id: int) -> Refused:
    return Refused(404, "not-found", f"There is no account {account_id}.")


def no_tracking_domain(account_id: int) -> Refused:
    return Refused(
        404,
        "no-tracking-domain",
        f"Account {account_id} has no link tracking domain.",
        fix="Save the host name your tracking links use as the account's link tracking domain.",
    )


def current_status(store: Store, account_id: int) -> DomainStatus:
    """The account's link tracking domain as the account sees it."""
    try:
        return tracking_domain_status(store, account_id)
    except NoTrackingDomain:
        raise no_tracking_domain(account_id) from None
    except NotFound:
        raise account_not_found(account_id) from None


@dataclass(frozen=True)
class Saved:
    """The domain as it stands after the save; `changed` is False when it already was the
    account's domain (nothing was done)."""

    status: DomainStatus
    changed: bool


def save(
    store: Store,
    account_id: int,
    name: str,
    policy: NamePolicy,
    claims: ClaimPolicy,
    wake: Wake | None = None,
) -> Saved:
    """Save `name` as the account's link tracking domain; the worker secures it (`wake`
    starts an in-process worker at once). Saving the same domain again changes nothing."""
    try:
        saved, changed = save_tracking_domain(store, account_id, name, policy, claims)
    except DomainNameError as exc:
        raise Refused(
            422,
            "invalid-domain",
            exc.message,
            code=exc.code,
            fix="Enter the host name your tracking links use, such as links.example.com.",
        ) from None
    except NotFound:
        raise account_not_found(account_id) from None
    except TooManyClaims as exc:
        raise Refused(
            409,
            "too-many-claims",
            str(exc).capitalize() + ".",
            fix="Create the DNS records shown for a domain you saved before, or wait for the "
            "unproven ones to expire.",
        ) from None
    except (Conflict, IntegrityError):
        raise Refused(
            409,
            "conflict",
            "That domain is already used by another account.",
            fix="Choose a domain of your own; if it is yours, contact support.",
        ) from None
    if changed and wake is not None:
        wake()
    return Saved(domain_status_for(store, saved.name, account_id), changed)


def retry(store: Store, account_id: int, wake: Wake | None = None) -> DomainStatus:
    """Check DNS and retry the certificate now rather than at the next scheduled attempt.

    Refused for a detached domain, and while the CA has asked us to wait.
    """
    current = current_status(store, account_id)
    try:
        retried = retry_now(store, current.domain, account_id)
    except NotFound:
        raise no_tracking_domain(account_id) from None
    except Conflict as exc:
        raise Refused(
            409,
            "domain-detached",
            str(exc),
            fix="Save it again as the account's link tracking domain.",
        ) from None
    except TooEarly as exc:
        raise Refused(
            409,
            "retry-too-early",
            str(exc),
            fix="Nothing to do: linkcert retries by itself at that time.",
            extra={"not_before": exc.not_before.isoformat()},
        ) from None
    if wake is not None:
        wake()
    return retried
