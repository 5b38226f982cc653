"""What endpoints depend on: the installation's context and the principal of the request.

Routers outside this package (say, tracked links) use the same dependencies:

    from linkcert.api import ApiContextDep, CurrentPrincipal

    @router.post("/links")
    def create_link(body: LinkIn, who: CurrentPrincipal, ctx: ApiContextDep) -> LinkOut: ...

`CurrentPrincipal` authenticates the token, applies the rate limit and answers 401 or 429 by
itself; `OperatorPrincipal` also answers 403 for account tokens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from anyio import from_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from linkcert.api.problems import (
    ProblemError,
    invalid_token,
    not_found,
    operator_only,
    unauthenticated,
)
from linkcert.api.ratelimit import RateLimiter, retry_after_header
from linkcert.auth import AuthenticationError, Principal, authenticate
from linkcert.config import Settings
from linkcert.names import NamePolicy
from linkcert.store import Store

log = logging.getLogger("linkcert.api")


@dataclass(frozen=True)
class ApiContext:
    """Everything an endpoint needs from the installation, set once by create_app()."""

    store: Store
    settings: Settings
    policy: NamePolicy
    limiter: RateLimiter | None
    wake: Callable[[], None] | None

    def wake_worker(self) -> None:
        """Tell the in-process worker there is work now, from a sync or an async endpoint.

        The worker's wake() touches asyncio objects, so it must run on the event loop: from a
        thread-pool endpoint it is handed over. If it fails, the save still stands: the
        worker's regular poll finds the work a moment later.
        """
        if self.wake is None:
            return
        try:
            if _on_event_loop():
                self.wake()
            else:
                from_thread.run_sync(self.wake)
        except Exception:
            log.exception("could not wake the worker; it will find the work on its next poll")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.linkcert
    return context


ApiContextDep = Annotated[ApiContext, Depends(get_context)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token from `linkcert token create`: `Authorization: Bearer lct_…`.",
)


def current_principal(
    request: Request,
    context: ApiContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who the request acts for; 401 without a valid token, 429 over the rate limit."""
    if credentials is None:
        if request.headers.get("authorization"):
            raise unauthenticated("The Authorization header must be `Bearer` and a token.")
        raise unauthenticated("This endpoint needs an API token.")
    try:
        principal = authenticate(context.store, credentials.credentials)
    except AuthenticationError as exc:
        raise invalid_token(exc.reason, exc.message) from None
    if context.limiter is not None:
        wait = context.limiter.acquire(principal.token_id)
        if wait is not None:
            raise ProblemError(
                429,
                "rate-limited",
                "This token is making requests faster than allowed.",
                fix="Wait for the number of seconds in Retry-After, then slow down.",
                headers={"Retry-After": retry_after_header(wait)},
            )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def operator_principal(principal: CurrentPrincipal) -> Principal:
    """The principal, if it is an operator; 403 for account tokens."""
    if not principal.is_operator:
        raise operator_only()
    return principal


OperatorPrincipal = Annotated[Principal, Depends(operator_principal)]


def require_account_access(principal: Principal, account_id: int) -> None:
    """404 unless the principal may see the account: the same answer as for no such account."""
    if not principal.may_see_account(account_id):
        raise account_not_found(account_id)


def account_not_found(account_id: int) -> ProblemError:
    return not_found(f"There is no account {account_id}.")
