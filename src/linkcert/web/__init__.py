"""The pages: the customer's Account Details page and the deliverability team's console.

`create_app(store, settings)` is the API application with the pages mounted on it, on the same
store and settings: what `linkcert serve` runs. The pages sit above the API (they use its
request context), so the API itself knows nothing of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from linkcert.api.deps import ApiContext
    from linkcert.config import Settings
    from linkcert.store import Store


def create_app(store: Store, settings: Settings, **options: Any) -> FastAPI:
    """The API application (`linkcert.api.create_app`, same options) with the pages."""
    from linkcert.api import create_app as create_api

    return create_api(store, settings, mount=mount, **options)


def mount(app: FastAPI, context: ApiContext) -> None:
    """Serve the pages and their static files from `app`."""
    from linkcert.web.pages import install

    install(app, context)


__all__ = ["create_app", "mount"]
