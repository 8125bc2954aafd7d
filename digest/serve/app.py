"""The web side of ``digest serve``: the Starlette app, its routes and error pages.

Subscribe (double opt-in), confirm, manage, unsubscribe (RFC 8058 one-click), a paper's
"more/less like this" (``/more``, ``/less``: :mod:`~digest.serve.feedback`), feeds with
conditional GET, the archive, the live preview, a health check (status and timestamps
only) and the operator's ``/admin`` and ``/metrics``; the handlers live in ``subscribe``,
``manage``, ``feeds``, ``archive``, ``preview`` and ``admin``, sharing a
:class:`~digest.serve.pages.Site`.

Pages come from ``templates/web/`` (the operator's folder first), autoescaped. Links in
emails carry HMAC-signed tokens naming one subscriber (:mod:`digest.compose.tokens`);
confirmation links are timed (itsdangerous). Forms carry a CSRF token bound to a cookie;
subscribe attempts are rate-limited per client address and per email address. Every page
sends ``Referrer-Policy: no-referrer`` (tokens live in URLs) and a strict CSP. Around every
request (:mod:`~digest.serve.middleware`): an access log line with tokens redacted, and a
body limit (``web.max_body``) enforced as the body streams in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from digest.run import Context
from digest.serve.admin import Admin
from digest.serve.archive import Archive
from digest.serve.feedback import Feedback
from digest.serve.feeds import Feeds
from digest.serve.logfmt import redact
from digest.serve.manage import Managing
from digest.serve.middleware import AccessLog, BodyLimit
from digest.serve.pages import Handlers, Site
from digest.serve.preview import Preview
from digest.serve.scheduler import Service
from digest.serve.subscribe import Subscribing

log = logging.getLogger("digest.web")


#: Failed scheduled passes in a row after which the health check answers 503.
FAILING_PASSES = 3


class Health(Handlers):
    """The public health check: a status word and timestamps, nothing a stranger could use
    (the errors themselves go to the log and ``digest status``).

    ``status``: ``ok``; ``degraded`` (the last pass failed, fewer than
    :data:`FAILING_PASSES` in a row); ``failing`` (that many in a row: 503); ``unavailable``
    (the scheduler is stopped or its ticks stopped coming: 503).
    """

    async def healthz(self, request: Request) -> Response:
        runs = await asyncio.to_thread(self.store.run_log.runs, 50)
        last_ok = next((r for r in runs if r.outcome in ("ok", "empty")), None)
        service = self.site.service
        running = service is not None and service.healthy
        failures = service.failed_passes if service is not None else 0
        if not running:
            status = "unavailable"
        elif failures >= FAILING_PASSES:
            status = "failing"
        else:
            status = "degraded" if failures else "ok"
        body = {
            "status": status,
            "scheduler": "running" if running else "stopped",
            "last_pass": _iso(service.last_pass_at if service else None),
            "last_good_pass": _iso(service.last_good_pass_at if service else None),
            "last_fetch": _iso(last_ok.started_at if last_ok else None),
        }
        healthy = status in ("ok", "degraded")
        return JSONResponse(body, 200 if healthy else 503, headers={"Cache-Control": "no-store"})


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


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
        refused = site.message("Not allowed", "This page does not take that request.", 405)
        if isinstance(exc, HTTPException) and exc.headers:  # RFC 9110 15.5.6: Allow
            refused.headers.update(exc.headers)
        return refused

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("error on %s %s", request.method, redact(request.url.path, ""))
        return site.message("Something went wrong", "Please try again in a minute.", 500)

    def too_large() -> Response:
        return site.message("Too large", "This request carries more than this site accepts.", 413)

    app = Starlette(
        routes=routes(site),
        lifespan=lifespan,
        exception_handlers={404: missing, 405: method, Exception: crashed},
        middleware=[
            Middleware(AccessLog),
            Middleware(BodyLimit, max_body=site.config.web.max_body, too_large=too_large),
        ],
    )
    app.state.web = site
    return app


def routes(site: Site) -> list[Route]:
    """The routing table: every URL the site answers, and its handler."""
    subscribing, managing, feeds = Subscribing(site), Managing(site), Feeds(site)
    archive, preview, health = Archive(site), Preview(site), Health(site)
    admin, feedback = Admin(site), Feedback(site)
    table: Sequence[Route] = [
        Route("/", subscribing.home),
        Route("/subscribe", subscribing.subscribe, methods=["POST"]),
        Route("/confirm", subscribing.confirm, methods=["GET", "POST"]),
        Route("/manage", _closing(managing.manage), methods=["GET", "POST"]),
        Route("/unsubscribe", managing.unsubscribe, methods=["GET", "POST"]),
        Route("/more", feedback.more, methods=["GET", "POST"]),  # a digest's feedback links
        Route("/less", feedback.less, methods=["GET", "POST"]),
        Route("/feed.xsl", feeds.stylesheet),  # before /feed.{kind}: a browser's view of a feed
        Route("/feed.{kind:str}", _kinds(feeds.public_feed)),
        Route("/feeds/{token:str}.{kind:str}", _kinds(feeds.private_feed)),
        Route("/archive/", archive.archive_index),
        Route("/archive", archive.archive_index),
        Route("/archive/search", archive.archive_search),
        Route("/archive/{day:str}", archive.archive_day),
        Route("/preview", preview.preview),
        Route("/static/subscribe.js", subscribing.script),
        Route("/healthz", health.healthz),
        Route("/admin", admin.admin),
        Route("/metrics", admin.metrics),
    ]
    return list(table)


def _closing(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """``handler``, then the request's form closed: the files of a multipart form (the
    manage page's library import) are spooled files Starlette leaves open."""

    async def closed(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        finally:
            await request.close()
        return response

    return closed


def _kinds(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def only_feeds(request: Request) -> Response:
        if request.path_params.get("kind") not in ("xml", "atom"):
            return HTMLResponse("Not found", 404)
        response: Response = await handler(request)
        return response

    return only_feeds
