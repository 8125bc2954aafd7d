"""The web side of ``digest serve``: the Starlette app, its routes and error pages.

Subscribe (double opt-in), confirm, manage, unsubscribe (RFC 8058 one-click), feeds with
conditional GET, the archive, the live preview and a health check; the handlers live in
``subscribe``, ``manage``, ``feeds``, ``archive`` and ``preview``, sharing a
:class:`~digest.serve.pages.Site`.

Pages come from ``templates/web/`` (the operator's folder first), autoescaped. Links in
emails carry HMAC-signed tokens naming one subscriber (:mod:`digest.compose.tokens`);
confirmation links are timed (itsdangerous). Forms carry a CSRF token bound to a cookie;
subscribe attempts are rate-limited per client address and per email address. Every page
sends ``Referrer-Policy: no-referrer`` (tokens live in URLs) and a strict CSP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from digest.run import Context
from digest.serve.archive import Archive
from digest.serve.feeds import Feeds
from digest.serve.manage import Managing
from digest.serve.pages import Handlers, Site
from digest.serve.preview import Preview
from digest.serve.scheduler import Service
from digest.serve.subscribe import Subscribing

log = logging.getLogger("digest.web")


class Health(Handlers):
    """The health check: the scheduler's state and the last good fetch."""

    async def healthz(self, request: Request) -> Response:
        runs = await asyncio.to_thread(self.store.runs, 50)
        last_ok = next((r for r in runs if r.outcome in ("ok", "empty")), None)
        running = self.site.service is not None and self.site.service.healthy
        body = {
            "status": "ok" if running else "unavailable",
            "scheduler": "running" if running else "stopped",
            "last_fetch": last_ok.started_at.isoformat() if last_ok else None,
            "last_error": self.site.service.last_error if self.site.service else None,
        }
        return JSONResponse(body, status_code=200 if running else 503)


def create_app(
    context: Callable[[], Context],
    service: Service | None,
    secret: bytes,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    start_service: bool = True,
) -> Starlette:
    """The ASGI app; with ``start_service`` the scheduler starts and stops with it."""
    site = Site(context, service, secret, clock=clock)
    timeout = site.config.web.shutdown_timeout

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if service is not None and start_service:
            service.start()
        yield
        if service is not None:
            await service.stop(timeout)

    async def missing(request: Request, exc: Exception) -> Response:
        return site.not_found()

    async def method(request: Request, exc: Exception) -> Response:
        return site.message("Not allowed", "This page does not take that request.", 405)

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("error on %s %s", request.method, request.url.path)
        return site.message("Something went wrong", "Please try again in a minute.", 500)

    app = Starlette(
        routes=routes(site),
        lifespan=lifespan,
        exception_handlers={404: missing, 405: method, Exception: crashed},
    )
    app.state.web = site
    return app


def routes(site: Site) -> list[Route]:
    """The routing table: every URL the site answers, and its handler."""
    subscribing, managing, feeds = Subscribing(site), Managing(site), Feeds(site)
    archive, preview, health = Archive(site), Preview(site), Health(site)
    table: Sequence[Route] = [
        Route("/", subscribing.home),
        Route("/subscribe", subscribing.subscribe, methods=["POST"]),
        Route("/confirm", subscribing.confirm),
        Route("/manage", managing.manage, methods=["GET", "POST"]),
        Route("/unsubscribe", managing.unsubscribe, methods=["GET", "POST"]),
        Route("/feed.{kind:str}", _kinds(feeds.public_feed)),
        Route("/feeds/{token:str}.{kind:str}", _kinds(feeds.private_feed)),
        Route("/archive/", archive.archive_index),
        Route("/archive", archive.archive_index),
        Route("/archive/{day:str}", archive.archive_day),
        Route("/preview", preview.preview),
        Route("/static/subscribe.js", subscribing.script),
        Route("/healthz", health.healthz),
    ]
    return list(table)


def _kinds(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def only_feeds(request: Request) -> Response:
        if request.path_params.get("kind") not in ("xml", "atom"):
            return HTMLResponse("Not found", 404)
        response: Response = await handler(request)
        return response

    return only_feeds
