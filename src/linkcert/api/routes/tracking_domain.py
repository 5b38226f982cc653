"""/accounts/{id}/tracking-domain: an account's link tracking domain, its events and retries.

Nothing here waits on DNS or the CA: saving a domain or asking for a retry writes to the
store, wakes the worker and answers at once with the domain's status as it then stands.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError

from linkcert.api.deps import (
    ApiContext,
    ApiContextDep,
    CurrentPrincipal,
    account_not_found,
    require_account_access,
)
from linkcert.api.problems import ProblemError, problem_responses
from linkcert.api.routes.accounts import AccountId
from linkcert.api.schemas import DomainStatusOut, EventList, EventOut, TrackingDomainIn
from linkcert.domains import (
    Conflict,
    DomainStatus,
    NotFound,
    NoTrackingDomain,
    TooEarly,
    TooManyClaims,
    domain_events,
    domain_status_for,
    remove_tracking_domain,
    retry_now,
    save_tracking_domain,
    tracking_domain_status,
)
from linkcert.names import DomainNameError
from linkcert.ownership import ClaimPolicy

router = APIRouter(tags=["tracking domain"])

PATH = "/accounts/{account_id}/tracking-domain"


def _no_tracking_domain(account_id: int) -> ProblemError:
    return ProblemError(
        404,
        "no-tracking-domain",
        f"Account {account_id} has no link tracking domain.",
        fix=f"Save one with PUT /api/v1/accounts/{account_id}/tracking-domain.",
    )


def _current(context: ApiContext, account_id: int) -> DomainStatus:
    try:
        return tracking_domain_status(context.store, account_id)
    except NoTrackingDomain:
        raise _no_tracking_domain(account_id) from None
    except NotFound:
        raise account_not_found(account_id) from None


@router.get(PATH, responses=problem_responses(401, 404, 422, 429))
def get_tracking_domain(
    account_id: AccountId, principal: CurrentPrincipal, context: ApiContextDep
) -> DomainStatusOut:
    """Where the account's link tracking domain stands: DNS, certificate, problems."""
    require_account_access(principal, account_id)
    return DomainStatusOut.of(_current(context, account_id), context.settings)


@router.put(
    PATH,
    responses={
        200: {"description": "The domain was already saved; nothing changed."},
        202: {"model": DomainStatusOut, "description": "Saved; the worker secures it now."},
        **problem_responses(400, 401, 404, 409, 413, 415, 422, 429),
    },
)
def put_tracking_domain(
    account_id: AccountId,
    body: TrackingDomainIn,
    principal: CurrentPrincipal,
    context: ApiContextDep,
    response: Response,
) -> DomainStatusOut:
    """Save the account's link tracking domain. Answers at once; the worker does the rest.

    202 when the domain was saved (new, replacing another, or resumed after a detach); 200
    when it already was the account's domain, in which case nothing changes. A replaced
    domain is no longer renewed but keeps serving links already sent.
    """
    require_account_access(principal, account_id)
    try:
        saved, changed = save_tracking_domain(
            context.store,
            account_id,
            body.domain,
            context.policy,
            ClaimPolicy.from_settings(context.settings),
        )
    except DomainNameError as exc:
        raise ProblemError(
            422,
            "invalid-domain",
            exc.message,
            code=exc.code,
            fix="Enter the host name your tracking links use, such as links.example.com.",
        ) from None
    except NotFound:
        raise account_not_found(account_id) from None
    except TooManyClaims as exc:
        raise ProblemError(
            409,
            "too-many-claims",
            str(exc).capitalize() + ".",
            fix="Create the DNS records shown for a domain you saved before, or wait for the "
            "unproven ones to expire.",
        ) from None
    except (Conflict, IntegrityError):
        raise ProblemError(
            409,
            "conflict",
            "That domain is already used by another account.",
            fix="Choose a domain of your own; if it is yours, contact support.",
        ) from None
    if changed:
        context.wake_worker()
    response.status_code = status.HTTP_202_ACCEPTED if changed else status.HTTP_200_OK
    return DomainStatusOut.of(
        domain_status_for(context.store, saved.name, account_id), context.settings
    )


@router.delete(PATH, responses=problem_responses(401, 404, 422, 429))
def delete_tracking_domain(
    account_id: AccountId, principal: CurrentPrincipal, context: ApiContextDep
) -> DomainStatusOut:
    """Detach the link tracking domain: it is no longer renewed, but is not revoked.

    Its current certificate keeps serving the links of emails already sent until it expires,
    and the name stays with the account. Answers with the domain's status (`wanted` false).
    """
    require_account_access(principal, account_id)
    try:
        return DomainStatusOut.of(remove_tracking_domain(context.store, account_id))
    except NoTrackingDomain:
        raise _no_tracking_domain(account_id) from None
    except NotFound:
        raise account_not_found(account_id) from None


@router.get(PATH + "/events", responses=problem_responses(401, 404, 422, 429))
def get_tracking_domain_events(
    account_id: AccountId,
    principal: CurrentPrincipal,
    context: ApiContextDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    """The domain's history: every state change with its reason, oldest first."""
    require_account_access(principal, account_id)
    current = _current(context, account_id)
    try:
        events = domain_events(context.store, current.domain, limit=limit)
    except NotFound:
        raise _no_tracking_domain(account_id) from None
    return EventList(domain=current.domain, items=[EventOut.model_validate(e) for e in events])


@router.post(
    PATH + "/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 404, 409, 422, 429),
)
def post_tracking_domain_retry(
    account_id: AccountId, principal: CurrentPrincipal, context: ApiContextDep
) -> DomainStatusOut:
    """Check DNS and retry the certificate now instead of at the next scheduled attempt.

    Refused (409) for a detached domain, and while the CA has asked us to wait.
    """
    require_account_access(principal, account_id)
    current = _current(context, account_id)
    try:
        retried = retry_now(context.store, current.domain, account_id)
    except NotFound:
        raise _no_tracking_domain(account_id) from None
    except Conflict as exc:
        raise ProblemError(
            409,
            "domain-detached",
            str(exc),
            fix=f"Save it again with PUT /api/v1/accounts/{account_id}/tracking-domain.",
        ) from None
    except TooEarly as exc:
        raise ProblemError(
            409,
            "retry-too-early",
            str(exc),
            fix="Nothing to do: linkcert retries by itself at that time.",
            extra={"not_before": exc.not_before.isoformat()},
        ) from None
    context.wake_worker()
    return DomainStatusOut.of(retried, context.settings)
