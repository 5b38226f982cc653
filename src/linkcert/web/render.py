"""Rendering pages: the templates, the static files' version, and the headers every page gets.

Pages allow scripts, styles and images from this origin only, cannot be framed, send no
referrer to other sites, and are never cached: they show one account's data.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from linkcert import __version__

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it, browsers send `Origin: null` on our own form posts, which
    # the CSRF check must then refuse. Other sites still learn nothing of our URLs.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@cache
def static_version() -> str:
    """Changes whenever a static file does, so browsers never run a stale script."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    values = {"static_version": static_version(), **context}
    response = TEMPLATES.TemplateResponse(request, template, values, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    return response


def fragment(request: Request, template: str, context: dict[str, Any]) -> str:
    """A template rendered to text, for the parts of a page that update in place."""
    return TEMPLATES.get_template(template).render({"request": request, **context})


def redirect(url: str) -> Response:
    # 303: after a form post, the browser fetches the next page with GET.
    response = RedirectResponse(url, status_code=303)
    response.headers.update(PAGE_HEADERS)
    return response
