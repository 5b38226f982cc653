"""/accounts/{id}/tracking-domain: an account's link tracking domain, its events and retries.

Nothing here waits on DNS or the CA: saving a domain or asking for a retry writes to the
store, wakes the worker and answers at once with the domain's status as it then stands.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from linkcert import account_domain
from linkcert.api.deps import (
    ApiContext,
    ApiContextDep,
    CurrentPrincipal,
    account_not_found,
    require_account_access,
)
from linkcert.api.problems import ProblemError, problem_for_refusal, problem_responses
from linkcert.api.routes.accounts import AccountId
from linkcert.api.schemas import DomainStatusOut, EventList, EventOut, TrackingDomainIn
from linkcert.domains import (
    DomainStatus,
    NotFound,
    NoTrackingDomain,
    domain_events,
    remove_tracking_domain,
)
from linkcert.ownership import ClaimPolicy
from linkcert.refusals import Refused

router = APIRouter(tags=["tracking domain"])

PATH = "/accounts/{account_id}/tracking-domain"


# What to do next, in this API's terms, where the use case's words are about the account.
_API_FIXES = {
    "no-tracking-domain": "Save one with PUT /api/v1/accounts/{account_id}/tracking-domain.",
    "domain-detached": "Save it again with PUT /api/v1/accounts/{account_id}/tracking-domain.",
}


def _problem(exc: Refused, account_id: int) -> ProblemError:
    """A refusal of the tracking-domain use cases as this API's problem document."""
    problem = problem_for_refusal(exc)
    if exc.slug in _API_FIXES:
        problem.fix = _API_FIXES[exc.slug].format(account_id=account_id)
    return problem


def _current(context: ApiContext, account_id: int) -> DomainStatus:
    try:
        return account_domain.current_status(context.store, account_id)
    except Refused as exc:
        raise _problem(exc, account_id) from None


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
        saved = account_domain.save(
            context.store,
            account_id,
            body.domain,
            context.policy,
            ClaimPolicy.from_settings(context.settings),
            context.wake_worker,
        )
    except Refused as exc:
        raise _problem(exc, account_id) from None
    response.status_code = status.HTTP_202_ACCEPTED if saved.changed else status.HTTP_200_OK
    return DomainStatusOut.of(saved.status, context.settings)


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
        raise _problem(account_domain.no_tracking_domain(account_id), account_id) from None
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
        raise _problem(account_domain.no_tracking_domain(account_id), account_id) from None
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
    try:
        retried = account_domain.retry(context.store, account_id, context.wake_worker)
    except Refused as exc:
        raise _problem(exc, account_id) from None
    return DomainStatusOut.of(retried, context.settings)
