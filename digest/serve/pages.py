"""What every page handler shares: the site's configuration, store, service, secrets, clock
and templates, and the helpers for pages, signed links and the CSRF cookie."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.compose import environment, tokens
from digest.models import Subscriber
from digest.run import Context
from digest.schedule import next_send
from digest.serve.scheduler import Service, schedule_of

CSRF_COOKIE = "digest_csrf"
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class Site:
    """The state the handlers share, and the plumbing of their pages."""

    def __init__(
        self,
        context: Callable[[], Context],
        service: Service | None,
        secret: bytes,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.context = context
        ctx = context()
        self.config = ctx.config
        self.store = ctx.store
        self.service = service
        self.secret = secret
        # Links in emails sent before DIGEST_SECRET was set were signed with the stored one.
        self.secrets = [secret, self.store.run_log.secret()]
        self.clock = clock
        self.env: Environment = environment(self.config.templates_dir)

    def feeds_changed(self) -> None:
        """Have the service rebuild the feeds at its next pass (when there is a service)."""
        if self.service is not None:
            self.service.feeds_dirty = True

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("site_title", self.config.feeds.title)
        context.setdefault("base_url", self.config.base_url)
        body = self.env.get_template(f"web/{name}.html").render(**context)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def message(self, title: str, text: str, status: int = 200, **extra: Any) -> HTMLResponse:
        return self.page("message", status, title=title, text=text, **extra)

    def bad_link(self) -> HTMLResponse:
        return self.message(
            "This link is not valid",
            "It may have been cut short or changed. Use the link from your most recent "
            "email, or subscribe again.",
            400,
            action_url="/",
            action_text="Go to the subscribe page",
        )

    def not_found(self) -> HTMLResponse:
        return self.message("Not found", "There is nothing at this address.", 404)

    def csrf_pair(self, request: Request) -> tuple[str, str]:
        """(cookie value, form field value) for this client."""
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not TOKEN_SHAPE.match(cookie):
            cookie = secrets.token_urlsafe(24)
        return cookie, tokens.sign(self.secret, "csrf", cookie)

    def with_csrf(self, request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        cookie, field = self.csrf_pair(request)
        response = self.page(name, status, csrf=field, **ctx)
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=self.config.base_url.startswith("https://"),
            max_age=7 * 86400,
        )
        return response

    def csrf_ok(self, request: Request, field: str) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        try:
            return bool(cookie) and secrets.compare_digest(
                tokens.verify(self.secret, "csrf", field), cookie
            )
        except tokens.BadToken:
            return False

    def subscriber_from(self, token: str, purpose: str) -> Subscriber | None:
        """The subscriber a signed link names, or None (forged, malformed, unknown)."""
        for secret in self.secrets:
            try:
                value = tokens.verify(secret, purpose, token)
            except tokens.BadToken:
                continue
            if value.startswith("email:"):
                return self.store.members.subscriber(value[6:])
            if value.isdigit():
                return self.store.members.subscriber_by_id(int(value))
        return None

    def link(self, purpose: str, sub: Subscriber) -> str:
        token = tokens.sign(self.secret, purpose, str(sub.id))
        return f"{self.config.base_url}/{purpose}?token={token}"

    def subscriber_links(self, sub: Subscriber) -> dict[str, str]:
        return {
            "manage_url": self.link("manage", sub),
            "unsubscribe_url": self.link("unsubscribe", sub),
            "feed_url": f"{self.config.base_url}/feeds/{sub.token}.atom",
        }

    def describe(self, sub: Subscriber) -> str:
        """When ``sub`` gets digests, in words (``daily at 08:00 (Europe/Paris)``)."""
        return schedule_of(self.config, sub).describe()

    def next_text(self, sub: Subscriber) -> str:
        sched = schedule_of(self.config, sub)
        when = sub.next_send_at or next_send(sched, self.clock())
        local = when.astimezone(sched.zone)
        return f"{local:%A %d %B %Y at %H:%M} ({sched.timezone})"


class Handlers:
    """A group of route handlers over the shared :class:`Site`."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.config = site.config
        self.store = site.store
