"""Who is looking at a page, and the checks every page and form post goes through.

Pages raise the exceptions here; `install_handlers` turns them into what a browser needs: a
redirect to the login form, or a short page saying what went wrong. Requests made by the
pages' own script (marked with `X-Requested-With: fetch`) get JSON instead, so the script can
send the person to the login form itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from linkcert.api.deps import ApiContext
from linkcert.auth import Principal
from linkcert.store.faults import StoreUnavailable
from linkcert.web.render import page, redirect
from linkcert.web.session import (
    SESSION_COOKIE,
    SessionSigner,
    WebSession,
    csrf_matches,
    open_session,
    principal_for,
    same_origin,
)

LOGIN_PATH = "/login"
ACCOUNT_PATH = "/account"
CONSOLE_PATH = "/console"


@dataclass(frozen=True)
class WebContext:
    api: ApiContext
    signer: SessionSigner


@dataclass(frozen=True)
class Visitor:
    principal: Principal
    session: WebSession

    @property
    def home(self) -> str:
        return CONSOLE_PATH if self.principal.is_operator else ACCOUNT_PATH


class LoginRequired(Exception):
    """No session, an expired one, or one whose token was revoked."""


class ElsewhereForYou(Exception):
    """This page is for the other kind of token: send the visitor to their own page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class FormExpired(Exception):
    """The CSRF token is missing or wrong, or the post came from another site."""


def get_web(request: Request) -> WebContext:
    web: WebContext = request.app.state.linkcert_web
    return web


WebDep = Annotated[WebContext, Depends(get_web)]


def current_visitor(request: Request, web: WebDep) -> Visitor:
    session = open_session(web.signer, web.api.store, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired()
    principal = principal_for(web.api.store, session)
    if principal is None:
        raise LoginRequired()
    return Visitor(principal, session)


def optional_visitor(request: Request, web: WebDep) -> Visitor | None:
    try:
        return current_visitor(request, web)
    except LoginRequired:
        return None


def account_visitor(visitor: Annotated[Visitor, Depends(current_visitor)]) -> Visitor:
    if visitor.principal.account_id is None:
        raise ElsewhereForYou(CONSOLE_PATH)
    return visitor


def operator_visitor(visitor: Annotated[Visitor, Depends(current_visitor)]) -> Visitor:
    if not visitor.principal.is_operator:
        raise ElsewhereForYou(ACCOUNT_PATH)
    return visitor


AnyVisitor = Annotated[Visitor, Depends(current_visitor)]
MaybeVisitor = Annotated[Visitor | None, Depends(optional_visitor)]
AccountVisitor = Annotated[Visitor, Depends(account_visitor)]
OperatorVisitor = Annotated[Visitor, Depends(operator_visitor)]


def require_csrf(request: Request, visitor: Visitor, given: str | None) -> None:
    if not same_origin(request) or not csrf_matches(visitor.session.csrf, given):
        raise FormExpired()


def from_script(request: Request) -> bool:
    return request.headers.get("x-requested-with") == "fetch"


async def _login_required(request: Request, _exc: Exception) -> Response:
    if from_script(request):
        return JSONResponse({"login": LOGIN_PATH}, status_code=401)
    return redirect(LOGIN_PATH)


async def _elsewhere(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ElsewhereForYou)
    if from_script(request):
        return JSONResponse({"location": exc.path}, status_code=403)
    return redirect(exc.path)


async def _form_expired(request: Request, _exc: Exception) -> Response:
    message = "This form has expired or did not come from this site. Reload the page and try again."
    if from_script(request):
        return JSONResponse({"error": message}, status_code=403)
    return page(request, "error.html", {"title": "Please try again", "message": message}, 403)


# What a customer or operator reads when the database cannot do its part.
_STORE_TROUBLE = {
    "read_only": "Changes can't be saved right now: our database is read-only.",
    "disk_full": "Changes can't be saved right now: our database has run out of space.",
    "locked": "We're too busy to finish this right now.",
    "unreachable": "We can't reach our database right now.",
}


def store_trouble_page(request: Request, trouble: StoreUnavailable) -> Response:
    """503 in words, for the pages (JSON for their scripts), with Retry-After."""
    first = _STORE_TROUBLE.get(trouble.code, "This can't be done right now.")
    message = (
        f"{first} Nothing you saved before is lost. Please try again in "
        f"{trouble.retry_after} seconds."
    )
    headers = {"Retry-After": str(trouble.retry_after)}
    if from_script(request):
        return JSONResponse(
            {"error": message, "code": trouble.code}, status_code=503, headers=headers
        )
    response = page(
        request,
        "error.html",
        {"title": "Temporarily unavailable", "message": message, "code": trouble.code},
        503,
    )
    response.headers.update(headers)
    return response


def install_handlers(app: FastAPI) -> None:
    app.state.store_trouble_page = store_trouble_page
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ElsewhereForYou, _elsewhere)
    app.add_exception_handler(FormExpired, _form_expired)
