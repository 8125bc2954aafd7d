"""ASGI middleware around every request: :class:`AccessLog` (a logfmt line per request,
tokens redacted) and :class:`BodyLimit` (a request body over ``web.max_body`` is refused
with 413 while it streams in: nothing past the limit is read, parsed or spooled)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.serve.logfmt import redact

access_log = logging.getLogger("digest.access")


class BodyLimit:
    """Answer 413 (``too_large()``) to a request whose body passes ``max_body`` bytes: at
    once when its Content-Length says so, else as soon as the bytes received pass it
    (nothing more is read), before the app sees the request, whatever its handler reads."""

    def __init__(self, app: ASGIApp, max_body: int, too_large: Callable[[], Response]) -> None:
        self.app = app
        self.max_body = max_body
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await self._refuse(scope, receive, send)
            return
        # The whole body is read (up to the limit) before the app runs, so a handler that
        # never reads its body (the unsubscribe POST acts on its token) cannot act on a
        # request that is too large: the forms need a few KB, so holding it costs nothing.
        held: list[Message] = []
        received = 0
        while True:
            message = await receive()
            held.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_body:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replayed() -> Message:
            return held.pop(0) if held else await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.too_large()
        response.status_code = 413
        # The rest of the body is never read: the connection cannot carry another request.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class AccessLog:
    """One line per request on ``digest.access``: method, target (tokens redacted), status,
    bytes sent, milliseconds, client address."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent = 500, 0  # what the server answers when the app fails before a response

        async def watched(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            client = scope.get("client")
            fields = {
                "method": scope.get("method", ""),
                "target": redact(scope.get("path", ""), query),
                "status": status,
                "bytes": sent,
                "ms": f"{(time.perf_counter() - started) * 1000:.1f}",
                "client": client[0] if client else "",
            }
            access_log.info("request", extra={"fields": fields})
