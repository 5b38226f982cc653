"""Adding the pages to the API application: routes, static files, session key, handlers."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from linkcert.api.deps import ApiContext
from linkcert.web import account, console, login
from linkcert.web.guard import WebContext, install_handlers
from linkcert.web.render import STATIC_DIR
from linkcert.web.session import SessionSigner


def install(app: FastAPI, context: ApiContext) -> None:
    app.state.linkcert_web = WebContext(context, SessionSigner.for_settings(context.settings))
    install_handlers(app)
    for module in (login, account, console):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
