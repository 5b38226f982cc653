"""/tokens: API tokens. Only operators make and revoke them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from linkcert.api.deps import ApiContextDep, OperatorPrincipal
from linkcert.api.problems import ProblemError, not_found, problem_responses
from linkcert.api.schemas import MAX_ID, TokenCreated, TokenIn, TokenOut
from linkcert.auth import create_token, revoke_token
from linkcert.domains import NotFound

router = APIRouter(tags=["tokens"])


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 413, 415, 422, 429),
)
def post_token(body: TokenIn, _: OperatorPrincipal, context: ApiContextDep) -> TokenCreated:
    """Make an account token (`account_id`) or an operator token (`"operator": true`).

    The answer holds the token itself, this once: linkcert keeps only its hash.
    """
    try:
        plain, row = create_token(context.store, body.account_id, body.name)
    except NotFound:
        raise ProblemError(
            422,
            "unknown-account",
            f"There is no account {body.account_id}.",
            fix="Create the account first with POST /api/v1/accounts.",
        ) from None
    except ValueError as exc:
        message = str(exc)
        raise ProblemError(
            422, "validation-error", message[:1].upper() + message[1:] + "."
        ) from None
    return TokenCreated(token=plain, **TokenOut.of(row).model_dump())


@router.delete("/tokens/{token_id}", responses=problem_responses(401, 403, 404, 422, 429))
def delete_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)], _: OperatorPrincipal, context: ApiContextDep
) -> TokenOut:
    """Revoke a token for good (operator). Revoking it again changes nothing."""
    try:
        return TokenOut.of(revoke_token(context.store, token_id))
    except NotFound:
        raise not_found(f"There is no API token {token_id}.") from None
