"""/accounts: customer accounts. Operators make and list them; an account may read itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from sqlalchemy.exc import IntegrityError

from linkcert.api.deps import (
    ApiContextDep,
    CurrentPrincipal,
    OperatorPrincipal,
    account_not_found,
    require_account_access,
)
from linkcert.api.problems import ProblemError, problem_responses
from linkcert.api.routes.paging import next_page
from linkcert.api.schemas import MAX_ID, AccountIn, AccountList, AccountOut, AccountPatch
from linkcert.domains import (
    Conflict,
    NotFound,
    account_summary,
    create_account,
    list_accounts,
    set_account_upstreams,
)

router = APIRouter(tags=["accounts"])

AccountId = Annotated[int, Path(ge=1, le=MAX_ID, description="The account's numeric id.")]


@router.post(
    "/accounts",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422, 429),
)
def post_account(body: AccountIn, _: OperatorPrincipal, context: ApiContextDep) -> AccountOut:
    """Create a customer account (operator)."""
    try:
        account = create_account(context.store, body.name, body.contact_emails)
    except (Conflict, IntegrityError):
        # IntegrityError: another request made the same account between check and insert.
        raise ProblemError(
            409,
            "conflict",
            f"An account named {body.name.strip()!r} already exists.",
            fix="Choose another name, or use the existing account.",
        ) from None
    except ValueError as exc:
        raise ProblemError(422, "invalid-account", str(exc)) from None
    return AccountOut.of(account_summary(context.store, account.id))


@router.get("/accounts", responses=problem_responses(401, 403, 422, 429))
def get_accounts(
    request: Request,
    _: OperatorPrincipal,
    context: ApiContextDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Start after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AccountList:
    """List accounts in id order (operator)."""
    accounts = list_accounts(context.store, after_id=after, limit=limit)
    last = str(accounts[-1].id) if accounts else None
    return AccountList(
        items=[AccountOut.of(a) for a in accounts],
        next=next_page(request, len(accounts), limit, last),
    )


@router.get("/accounts/{account_id}", responses=problem_responses(401, 404, 422, 429))
def get_account(
    account_id: AccountId, principal: CurrentPrincipal, context: ApiContextDep
) -> AccountOut:
    """One account (operator, or that account's own token)."""
    require_account_access(principal, account_id)
    try:
        summary = account_summary(context.store, account_id)
    except NotFound:
        raise account_not_found(account_id) from None
    return AccountOut.of(summary, operator=principal.is_operator)


@router.patch(
    "/accounts/{account_id}",
    responses=problem_responses(400, 401, 403, 404, 413, 415, 422, 429),
)
def patch_account(
    account_id: AccountId, body: AccountPatch, _: OperatorPrincipal, context: ApiContextDep
) -> AccountOut:
    """Change an account (operator): its own origins in proxy mode, `upstreams`. The edges
    pick the change up within a minute."""
    try:
        summary = set_account_upstreams(context.store, account_id, body.upstreams)
    except NotFound:
        raise account_not_found(account_id) from None
    except ValueError as exc:
        raise ProblemError(
            422,
            "invalid-upstreams",
            str(exc),
            fix="Give each origin as http://HOST:PORT or https://HOST:PORT, without a path.",
        ) from None
    return AccountOut.of(summary)
