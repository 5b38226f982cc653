"""ASGI middleware of the API: a cap on request bodies, and a last line for unhandled errors.

Both are plain ASGI so that they run before anything else looks at the request, and so that
the error handler can stop an exception there instead of handing it on to the server.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linkcert.api.problems import ProblemError

log = logging.getLogger("linkcert.api")

DEFAULT_MAX_BODY_BYTES = 64 * 1024


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        "request-too-large",
        f"The request body is larger than {limit} bytes.",
        fix="Send less: a batch of links in several requests, anything else is small.",
    )


class BodySizeLimit:
    """Refuse request bodies over `limit` bytes with 413, before any handler reads them.

    A declared Content-Length is checked first. A body without one (chunked) is read up to
    the limit and handed on from memory; at 64 KiB that costs less than streaming through.
    Paths in `larger` have their own limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int = DEFAULT_MAX_BODY_BYTES,
        larger: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        # Paths that need more (the batch of 10,000 links), exactly as requested.
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit).response()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(limit).response()(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)

        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class CatchAll:
    """Answer any unhandled exception with an opaque 500 problem and log it with the same id.

    The client gets the id to quote; the traceback goes to the log only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            error_id = uuid.uuid4().hex[:16]
            log.exception(
                "unhandled error %s on %s %s", error_id, scope.get("method"), scope.get("path")
            )
            if started:
                # Part of the answer is out already; the server will drop the connection.
                raise
            problem = ProblemError(
                500,
                "internal-error",
                f"Something went wrong on our side (error id {error_id}).",
                fix="Try again later; if it keeps happening, report the error id.",
                extra={"error_id": error_id},
            )
            await problem.response()(scope, receive, send)
