"""/domains: link tracking domains by name. Operators list them all; an account its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from linkcert.api.deps import (
    ApiContextDep,
    CurrentPrincipal,
    OperatorPrincipal,
    account_not_found,
)
from linkcert.api.problems import ProblemError, not_found, problem_responses
from linkcert.api.routes.paging import (
    MAX_CURSOR_LENGTH,
    BadCursor,
    cursor_page,
    decode_cursor,
    encode_cursor,
)
from linkcert.api.schemas import MAX_ID, DomainList, DomainStatusOut
from linkcert.domains import (
    DomainQuery,
    NotFound,
    delete_domain,
    domain_status_for,
    find_domains,
)
from linkcert.states import CertState, DnsState, FailureClass

router = APIRouter(tags=["domains"])


DEFAULT_PAGE = 100
MAX_PAGE = 1000


@router.get("/domains", responses=problem_responses(400, 401, 404, 422, 429))
def get_domains(
    request: Request,
    principal: CurrentPrincipal,
    context: ApiContextDep,
    dns_state: DnsState | None = None,
    cert_state: CertState | None = None,
    failure_class: Annotated[
        FailureClass | None,
        Query(description="Only domains whose last attempt failed for this reason."),
    ] = None,
    account_id: Annotated[
        int | None,
        Query(ge=1, le=MAX_ID, description="Only the domains this account owns (operator)."),
    ] = None,
    prefix: Annotated[
        str,
        Query(
            max_length=253,
            description="Only names that start with this (ASCII form, e.g. `links.` or `xn--`).",
        ),
    ] = "",
    cursor: Annotated[
        str,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="Where the page starts: the `cursor` of the previous page's `next`. "
            "It is opaque and only valid with the same filters, for the same token.",
        ),
    ] = "",
    after: Annotated[
        str,
        Query(
            max_length=253,
            description="Start after this name (earlier form of `cursor`, still accepted).",
            deprecated=True,
        ),
    ] = "",
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="Domains per page (default 100).")
    ] = DEFAULT_PAGE,
) -> DomainList:
    """List domains in name order, a page at a time (`limit`, default 100, at most 1000).

    An operator sees every domain; an account token sees the domains its account owns. Filters
    combine. `next` is the URL of the following page (an opaque `cursor`), or null on the last
    page; no total is counted.
    """
    owner = account_id
    if not principal.is_operator:
        if account_id is not None and account_id != principal.account_id:
            raise account_not_found(account_id)
        owner = principal.account_id
    query = DomainQuery.of(dns_state, cert_state, failure_class, owner, prefix)
    # The viewer is part of the query: one token's cursor is refused for another's.
    scope = {**query.key(), "viewer": principal.account_id or "operator"}
    start = after
    if cursor:
        try:
            start = decode_cursor(cursor, scope)
        except BadCursor as exc:
            raise ProblemError(
                400,
                "invalid-cursor",
                f"The page cursor is not valid here: {exc}.",
                fix="Start again from the first page (no `cursor`), and follow each page's "
                "`next` URL as it is.",
            ) from None
    # One row more than the page tells whether a next page exists, without a count.
    statuses = find_domains(context.store, after=start, limit=limit + 1, query=query)
    page, more = statuses[:limit], len(statuses) > limit
    return DomainList(
        items=[DomainStatusOut.of(s) for s in page],
        next=cursor_page(request, encode_cursor(page[-1].domain, scope)) if more else None,
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
