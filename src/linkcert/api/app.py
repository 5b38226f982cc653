"""Assembling the REST API: routers under /api/v1, problem documents, limits.

    app = create_app(store, settings, wake=worker.wake)
    app.include_router(links_router, prefix=API_PREFIX)   # more endpoints, same auth and errors

Endpoints are plain functions run in a thread pool, since the store is synchronous; `wake` is
still called on the event loop, so an asyncio-based worker's wake() can be passed as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from linkcert import __version__
from linkcert.api.deps import ApiContext
from linkcert.api.docs import install_docs
from linkcert.api.middleware import DEFAULT_MAX_BODY_BYTES, BodySizeLimit, CatchAll
from linkcert.api.problems import PROBLEM_MEDIA_TYPE, Problem, install_problem_handlers
from linkcert.api.ratelimit import DEFAULT_RATE_LIMIT, RateLimit, RateLimiter
from linkcert.api.routes import (
    accounts,
    brand_requests,
    dns_check,
    domains,
    events,
    links,
    me,
    tokens,
    tracking_domain,
)
from linkcert.api.routes.deliveries import router as deliveries_router
from linkcert.config import Settings
from linkcert.metrics import metrics_router
from linkcert.names import NamePolicy
from linkcert.store import Store

API_PREFIX = "/api/v1"

DESCRIPTION = """\
Automatic HTTPS for customers' link tracking domains.

Every request needs an API token: `Authorization: Bearer lct_…`. Operator tokens may do
everything; an account token sees only its own account. Errors are RFC 9457 problem documents
(`application/problem+json`) with a stable `type`.
"""


def create_app(
    store: Store,
    settings: Settings,
    *,
    wake: Callable[[], None] | None = None,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    clock: Callable[[], float] = time.monotonic,
    mount: Callable[[FastAPI, ApiContext], None] | None = None,
) -> FastAPI:
    """The API application over `store`.

    `wake` is called when a domain was saved or a retry forced, so that an in-process worker
    starts at once. `rate_limit` applies per token (None turns it off); `clock` drives it.
    `mount` adds more on the same context: `linkcert.web.create_app` mounts the pages with it.
    """
    app = FastAPI(
        title="linkcert",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served by install_docs, from linkcert's own files
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.linkcert = ApiContext(
        store=store,
        settings=settings,
        policy=NamePolicy.from_settings(settings),
        limiter=RateLimiter(rate_limit, clock) if rate_limit is not None else None,
        wake=wake,
    )
    install_problem_handlers(app)
    # Added last runs first: errors are caught around everything, bodies capped before auth.
    app.add_middleware(
        BodySizeLimit,
        limit=max_body_bytes,
        larger={f"{API_PREFIX}/links/batch": links.MAX_BATCH_BODY_BYTES},
    )
    app.add_middleware(CatchAll)
    for module in (
        me,
        accounts,
        tracking_domain,
        dns_check,
        domains,
        brand_requests,
        tokens,
        links,
        events,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(deliveries_router, prefix=API_PREFIX)
    # Unauthenticated: counts only, see docs/alerts.md.
    app.include_router(metrics_router(store, settings.metrics_store_refresh_seconds))
    if settings.api_docs:
        install_docs(app)
    if mount is not None:
        mount(app, app.state.linkcert)
    _document_problems_as_problem_json(app)
    return app


def _document_problems_as_problem_json(app: FastAPI) -> None:
    """Make the OpenAPI document say what is sent: errors as application/problem+json."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if code.isdigit() and int(code) >= 400 and "application/json" in content:
                        response["content"] = {PROBLEM_MEDIA_TYPE: content["application/json"]}
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "Problem", Problem.model_json_schema()
        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
