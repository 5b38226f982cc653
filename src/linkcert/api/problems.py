"""Errors as RFC 9457 problem documents, so that every client reads them the same way.

Each kind of problem has a stable `type` URI under PROBLEM_BASE and a fixed `title`; `detail`
explains this occurrence, `code` (where known) is a finer stable identifier, such as the rule a
domain name breaks, and `fix` says what to do about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from linkcert.counters import count_store_unavailable
from linkcert.refusals import Refused
from linkcert.store.faults import StoreUnavailable, classify

log = logging.getLogger("linkcert.api")

PROBLEM_BASE = "https://linkcert.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# slug -> title. The slugs are part of the API: clients branch on them.
TITLES: dict[str, str] = {
    "unauthenticated": "Authentication required",
    "invalid-token": "Invalid API token",
    "operator-only": "Operator token required",
    "not-found": "Not found",
    "no-tracking-domain": "No link tracking domain",
    "method-not-allowed": "Method not allowed",
    "malformed-json": "Malformed JSON",
    "invalid-cursor": "Invalid page cursor",
    "unsupported-media-type": "Unsupported media type",
    "validation-error": "Invalid request",
    "invalid-domain": "Invalid domain name",
    "invalid-account": "Invalid account",
    "invalid-upstreams": "Invalid origin address",
    "unknown-account": "Unknown account",
    "conflict": "Conflict",
    "domain-detached": "Domain detached",
    "retry-too-early": "Retry not allowed yet",
    "invalid-destination": "Invalid link destination",
    "invalid-endpoint": "Endpoint not allowed",
    "domain-not-proven": "Domain not proven",
    "too-many-claims": "Too many unproven domains",
    "tracking-unavailable": "Tracked links are not configured",
    "request-closed": "Request already decided",
    "too-many-open-requests": "Too many open requests",
    "invalid-certificate": "Unusable certificate or key",
    "uploads-unavailable": "Certificate uploads are not configured",
    "request-too-large": "Request too large",
    "rate-limited": "Too many requests",
    "store-unavailable": "Database unavailable",
    "internal-error": "Internal error",
    "http-error": "HTTP error",
}

BEARER_CHALLENGE = 'Bearer realm="linkcert"'


class Problem(BaseModel):
    """An RFC 9457 problem document, as linkcert sends it."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str | None = None
    fix: str | None = None


class ProblemError(Exception):
    """Raise this anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        code: str | None = None,
        fix: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        if slug not in TITLES:
            raise ValueError(f"unknown problem type {slug!r}: add it to TITLES")
        self.status = status
        self.slug = slug
        self.detail = detail
        self.code = code
        self.fix = fix
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": TITLES[self.slug],
            "status": self.status,
            "detail": self.detail,
        }
        if self.code is not None:
            document["code"] = self.code
        if self.fix is not None:
            document["fix"] = self.fix
        document.update(self.extra)
        return document

    def response(self) -> Response:
        return JSONResponse(
            self.body(),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


# --- the problems that several endpoints share --------------------------------------------


def not_found(detail: str, fix: str | None = None) -> ProblemError:
    return ProblemError(404, "not-found", detail, fix=fix)


def operator_only() -> ProblemError:
    return ProblemError(
        403,
        "operator-only",
        "This endpoint needs an operator token; account tokens can't use it.",
        fix="Use a token made with `linkcert token create --operator`.",
    )


def unauthenticated(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "unauthenticated",
        detail,
        fix="Send `Authorization: Bearer <token>` with a token from `linkcert token create`.",
        headers={"WWW-Authenticate": BEARER_CHALLENGE},
    )


def invalid_token(reason: str, detail: str) -> ProblemError:
    return ProblemError(
        401,
        "invalid-token",
        detail,
        code=reason,
        fix="Ask your platform operator for a new API token.",
        headers={"WWW-Authenticate": BEARER_CHALLENGE + ', error="invalid_token"'},
    )


# --- turning framework errors into problems ---------------------------------------------


def _location(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def problem_for_validation(request: Request, exc: RequestValidationError) -> ProblemError:
    """A clear problem for a request FastAPI could not parse or validate.

    The submitted values are never echoed back: they may be large, binary or secret.
    """
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        return ProblemError(
            400,
            "malformed-json",
            "The request body is not valid JSON.",
            fix='Send a JSON object, such as {"domain": "links.example.com"}.',
        )
    whole_body = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
    if whole_body:
        content_type = request.headers.get("content-type", "")
        if whole_body[0].get("type") == "missing":
            return ProblemError(
                422,
                "validation-error",
                "This request needs a JSON body.",
                fix="Send a JSON object with `Content-Type: application/json`.",
            )
        if not _is_json(content_type):
            return ProblemError(
                415,
                "unsupported-media-type",
                f"The request body must be JSON, not {content_type or 'untyped data'}.",
                fix="Send a JSON object with `Content-Type: application/json`.",
            )
    listed = [
        {"location": _location(e.get("loc", ())), "message": e.get("msg", ""), "type": e["type"]}
        for e in errors
    ]
    first = listed[0] if listed else {"location": "request", "message": "invalid"}
    more = f" (and {len(listed) - 1} more)" if len(listed) > 1 else ""
    return ProblemError(
        422,
        "validation-error",
        f"{first['location']}: {first['message']}{more}",
        fix="Check the request against the API reference at /docs.",
        extra={"errors": listed},
    )


def problem_for_http_error(request: Request, exc: StarletteHTTPException) -> ProblemError:
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        return ProblemError(
            404,
            "not-found",
            f"There is no endpoint at {request.url.path}.",
            fix="See /docs for the endpoints of this API.",
            headers=headers,
        )
    if exc.status_code == 405:
        allowed = headers.get("allow") or headers.get("Allow") or ""
        return ProblemError(
            405,
            "method-not-allowed",
            f"{request.method} is not allowed on {request.url.path}.",
            fix=f"Use one of: {allowed}." if allowed else None,
            headers=headers,
        )
    return ProblemError(exc.status_code, "http-error", str(exc.detail), headers=headers)


async def _on_problem(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.response()


def problem_for_refusal(exc: Refused) -> ProblemError:
    """A use case's refusal as the problem document the API answers with."""
    return ProblemError(
        exc.status, exc.slug, exc.message, code=exc.code, fix=exc.fix, extra=exc.extra
    )


async def _on_refused(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return problem_for_refusal(exc).response()


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_for_validation(request, exc).response()


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return problem_for_http_error(request, exc).response()


def store_unavailable(trouble: StoreUnavailable) -> ProblemError:
    """503 for a database that is read-only, full, locked or down: nothing the client did."""
    return ProblemError(
        503,
        "store-unavailable",
        f"{trouble.detail} Nothing already saved is lost.",
        code=trouble.code,
        fix=f"Try again in {trouble.retry_after} seconds; reads may still work meanwhile.",
        headers={"Retry-After": str(trouble.retry_after)},
    )


# Set on app.state by the pages, to answer a page request in HTML rather than JSON.
StoreTroublePage = Callable[[Request, StoreUnavailable], Response]


async def _on_store_error(request: Request, exc: Exception) -> Response:
    trouble = classify(exc)
    if trouble is None:
        raise exc  # a bug, not a condition: CatchAll answers 500 with an error id
    count_store_unavailable(trouble.code)
    # The driver's own message only: SQLAlchemy's text of the error holds the statement and
    # its parameters, which may be secrets.
    reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
    log.warning(
        "database unavailable (%s) on %s %s: %s",
        trouble.code,
        request.method,
        request.url.path,
        reason[0] if reason else "",
    )
    page: StoreTroublePage | None = getattr(request.app.state, "store_trouble_page", None)
    if page is not None and not request.url.path.startswith("/api/"):
        return page(request, trouble)
    return store_unavailable(trouble).response()


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(Refused, _on_refused)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(DBAPIError, _on_store_error)
    app.add_exception_handler(PoolTimeout, _on_store_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the problems an endpoint can answer with."""
    described = {
        400: "The body is not valid JSON.",
        401: "No token, or a malformed, unknown or revoked one.",
        403: "The endpoint needs an operator token.",
        404: "No such resource, or one of another account.",
        409: "The change clashes with the current state.",
        413: "The request body is too large.",
        415: "The body is not JSON.",
        422: "The request is invalid; `errors` lists each problem.",
        429: "Too many requests for this token; see Retry-After.",
        503: "The database is read-only, full, locked or unreachable; see Retry-After.",
    }
    return {
        status: {"model": Problem, "description": described.get(status, "A problem.")}
        for status in statuses
    }
