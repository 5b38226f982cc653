"""Logging in with an API token, and out.

The token is posted in the form body, never in a URL, and never written to a log; what the
browser keeps is a signed session (see `session.py`). An account token opens the account
page, an operator token the deliverability console.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form
from starlette.requests import Request
from starlette.responses import Response

from linkcert.auth import AuthenticationError, authenticate
from linkcert.web.guard import LOGIN_PATH, AnyVisitor, MaybeVisitor, WebDep, require_csrf
from linkcert.web.render import page, redirect
from linkcert.web.session import (
    LOGIN_COOKIE,
    LOGIN_FORM_LIFETIME_SECONDS,
    SESSION_COOKIE,
    SESSION_LIFETIME_SECONDS,
    clear_cookie,
    csrf_matches,
    end_session,
    same_origin,
    seal_session,
    set_cookie,
    start_session,
)

router = APIRouter(include_in_schema=False)

# Long enough for any token, short enough that nobody posts a novel.
MAX_TOKEN_FIELD = 200


def _login_form(
    request: Request,
    error: str | None = None,
    status_code: int = 200,
    notice: str | None = None,
) -> Response:
    form_secret = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        {"title": "Log in", "csrf_token": form_secret, "error": error, "notice": notice},
        status_code,
    )
    set_cookie(request, response, LOGIN_COOKIE, form_secret, LOGIN_FORM_LIFETIME_SECONDS)
    return response


@router.get("/")
def home(visitor: MaybeVisitor) -> Response:
    return redirect(visitor.home if visitor else LOGIN_PATH)


@router.get(LOGIN_PATH)
def login_page(request: Request, visitor: MaybeVisitor, logged_out: bool = False) -> Response:
    if visitor is not None:
        return redirect(visitor.home)
    return _login_form(request, notice="You are logged out." if logged_out else None)


@router.post(LOGIN_PATH)
def login(
    request: Request,
    web: WebDep,
    token: Annotated[str, Form(max_length=MAX_TOKEN_FIELD)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not same_origin(request) or not csrf_matches(
        request.cookies.get(LOGIN_COOKIE, ""), csrf_token
    ):
        return _login_form(request, "The login form expired. Please enter your token again.", 403)
    if not token.strip():
        return _login_form(request, "Enter your API token.", 422)
    try:
        principal = authenticate(web.api.store, token.strip())
    except AuthenticationError as exc:
        return _login_form(request, exc.message, 401)
    session_id, _ = start_session(web.api.store, principal.token_id)
    response = redirect("/console" if principal.is_operator else "/account")
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        seal_session(web.signer, session_id),
        SESSION_LIFETIME_SECONDS,
    )
    clear_cookie(request, response, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(
    request: Request,
    web: WebDep,
    visitor: AnyVisitor,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    require_csrf(request, visitor, csrf_token)
    end_session(web.api.store, visitor.session)
    response = redirect(LOGIN_PATH + "?logged_out=1")
    clear_cookie(request, response, SESSION_COOKIE)
    return response
