"""/me: who the request's token is, so a client can check its setup."""

from __future__ import annotations

from fastapi import APIRouter

from linkcert.api.deps import ApiContextDep, CurrentPrincipal
from linkcert.api.problems import problem_responses
from linkcert.api.schemas import AccountOut, MeOut, TokenRef
from linkcert.domains import account_summary

router = APIRouter(tags=["me"])


@router.get("/me", responses=problem_responses(401, 429))
def get_me(principal: CurrentPrincipal, context: ApiContextDep) -> MeOut:
    """The token's kind, its account (for account tokens) and its id and name."""
    account = None
    if principal.account_id is not None:
        account = AccountOut.of(
            account_summary(context.store, principal.account_id), operator=False
        )
    return MeOut(
        kind="operator" if principal.is_operator else "account",
        account=account,
        token=TokenRef(id=principal.token_id, name=principal.token_name),
    )
