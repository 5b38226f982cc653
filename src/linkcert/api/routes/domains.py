"""/domains: link tracking domains by name. Operators list them all; an account sees its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from linkcert.api.deps import ApiContextDep, CurrentPrincipal, OperatorPrincipal
from linkcert.api.problems import not_found, problem_responses
from linkcert.api.routes.paging import next_page
from linkcert.api.schemas import DomainList, DomainStatusOut
from linkcert.domains import NotFound, delete_domain, domain_status_for, find_domains
from linkcert.states import CertState, DnsState

router = APIRouter(tags=["domains"])


@router.get("/domains", responses=problem_responses(401, 403, 422, 429))
def get_domains(
    request: Request,
    _: OperatorPrincipal,
    context: ApiContextDep,
    dns_state: DnsState | None = None,
    cert_state: CertState | None = None,
    after: Annotated[str, Query(max_length=253, description="Start after this name.")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DomainList:
    """List domains in name order, optionally only those in a given state (operator)."""
    statuses = find_domains(
        context.store,
        dns_state=dns_state.value if dns_state else None,
        cert_state=cert_state.value if cert_state else None,
        after=after,
        limit=limit,
    )
    last = statuses[-1].domain if statuses else None
    return DomainList(
        items=[DomainStatusOut.of(s) for s in statuses],
        next=next_page(request, len(statuses), limit, last),
    )


@router.get("/domains/{name}", responses=problem_responses(401, 404, 422, 429))
def get_domain(
    name: Annotated[str, Path(max_length=1024, description="The domain, in any form.")],
    principal: CurrentPrincipal,
    context: ApiContextDep,
) -> DomainStatusOut:
    """One domain (operator, or the account it belongs to)."""
    try:
        status = domain_status_for(context.store, name, principal.account_id)
    except NotFound:
        raise not_found(f"There is no domain {name[:260]!r}.") from None
    return DomainStatusOut.of(status, context.settings)


@router.delete(
    "/domains/{name}",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 404, 422, 429),
)
def delete_domain_route(
    name: Annotated[str, Path(max_length=1024, description="The domain, in any form.")],
    _: OperatorPrincipal,
    context: ApiContextDep,
) -> DomainStatusOut:
    """Delete a domain (operator): its certificate is revoked and its keys erased.

    Answers at once; the worker talks to the CA. Links on the domain stop working.
    """
    try:
        result = delete_domain(context.store, name)
    except NotFound:
        raise not_found(f"There is no domain {name[:260]!r}.") from None
    context.wake_worker()
    return DomainStatusOut.of(result)
