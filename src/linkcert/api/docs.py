"""`/docs`: the API's interactive reference, every file of it served by linkcert itself.

Swagger UI (5.x, which reads OpenAPI 3.1) comes from the files of the pinned `fastapi-offline`
package, not from a CDN, so the page
(which shares its origin with the operator console) runs no script that another party could
change. A strict Content-Security-Policy holds it to this origin; `api_docs = false` turns the
page off.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
HERE = Path(__file__).parent / "docs_assets"

DOCS_HEADERS = {
    # Swagger UI sets inline styles on its elements: styles may be inline, scripts may not.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/docs.js"></script>
</body>
</html>
"""


def _swagger_files() -> dict[str, Path]:
    base = Path(str(files("fastapi_offline"))) / "static"
    found = {name: base / name for name in ("swagger-ui.css", "swagger-ui-bundle.js")}
    found["favicon.png"] = base / "favicon.png"
    found["docs.js"] = HERE / "docs.js"
    return found


def install_docs(app: FastAPI) -> None:
    """Serve `/docs` and its few files (no other file of the package is reachable)."""
    served = _swagger_files()
    page = PAGE.format(title=app.title, assets=ASSETS_PATH)

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs(_request: Request) -> Response:
        return HTMLResponse(page, headers=DOCS_HEADERS)

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        path = served.get(name)
        if path is None:
            return Response(status_code=404)
        return FileResponse(
            path, headers={**DOCS_HEADERS, "Cache-Control": "public, max-age=86400"}
        )
