"""The REST API: accounts, their link tracking domains, and API tokens, under /api/v1.

`create_app()` builds the application. Further routers (tracked links, say) are added with
`app.include_router(router, prefix=API_PREFIX)` and use the dependencies exported here:
`CurrentPrincipal` (any valid token), `OperatorPrincipal` (operator tokens only) and
`ApiContextDep` (the store, settings and name policy), and raise `ProblemError` for errors.
"""

from linkcert.api.app import API_PREFIX, create_app
from linkcert.api.deps import (
    ApiContext,
    ApiContextDep,
    CurrentPrincipal,
    OperatorPrincipal,
    require_account_access,
)
from linkcert.api.problems import ProblemError, not_found
from linkcert.api.ratelimit import RateLimit
from linkcert.auth import Principal

__all__ = [
    "API_PREFIX",
    "ApiContext",
    "ApiContextDep",
    "CurrentPrincipal",
    "OperatorPrincipal",
    "Principal",
    "ProblemError",
    "RateLimit",
    "create_app",
    "not_found",
    "require_account_access",
]
