"""The pages: the customer's Account Details page and the deliverability team's console.

`mount(app, context)` adds them to the API application, on the same store and settings. The
heavy imports wait until then, so that `linkcert.web.hooks` stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from linkcert.api.deps import ApiContext


def mount(app: FastAPI, context: ApiContext) -> None:
    """Serve the pages and their static files from `app`."""
    from linkcert.web.pages import install

    install(app, context)


__all__ = ["mount"]
