"""The web side of ``digest serve``: subscribe (double opt-in), confirm, manage, unsubscribe
(RFC 8058 one-click), feeds with conditional GET, the archive and a health check.

Pages come from ``templates/web/`` (the operator's folder first), autoescaped. Links in
emails carry HMAC-signed tokens naming one subscriber (:mod:`digest.tokens`); confirmation
links are timed (itsdangerous). Forms carry a CSRF token bound to a cookie; subscribe
attempts are rate-limited per client address and per email address. Every page sends
``Referrer-Policy: no-referrer`` (tokens live in URLs) and a strict CSP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from jinja2 import Environment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from digest.compose import (
    build_message,
    environment,
    list_id_for,
    make_message_id,
    paper_view,
    sender_address,
    tokens,
)
from digest.config import Invalid, normalise_address
from digest.deliver import Outgoing, send_one
from digest.errors import DigestError, QueryError
from digest.models import Match, Subscriber
from digest.run import Context, Previewer, make_sender
from digest.schedule import WEEKDAYS, Schedule, ScheduleError, next_send
from digest.select import validate as validate_query
from digest.serve.scheduler import Service, schedule_of

log = logging.getLogger("digest.web")

CSRF_COOKIE = "digest_csrf"
_FEED_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
MAX_QUERIES = 20
MAX_QUERY_LENGTH = 300


class RateLimiter:
    """At most ``limit`` events per key in a sliding ``window`` of seconds (in memory)."""

    def __init__(self, limit: int, window: float = 3600.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> float:
        """0 if allowed (and counted), else the seconds until the next attempt is allowed."""
        now = time.monotonic() if now is None else now
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + self.window - now
        events.append(now)
        if len(self._events) > 100_000:  # forget idle keys
            for k in [k for k, v in self._events.items() if not v][:50_000]:
                del self._events[k]
        return 0.0


@dataclass
class Form:
    """The subscribe / manage form, as typed, with one error message per field."""

    email: str = ""
    keywords: str = ""
    exclude: str = ""
    send_at: str = "08:00"
    timezone: str = "UTC"
    frequency: str = "daily"
    weekday: str = "mon"
    days: tuple[str, ...] = ()
    errors: dict[str, str] | None = None


def _lines(text: str) -> tuple[str, ...]:
    return tuple(q.strip() for q in text.replace("\r", "\n").split("\n") if q.strip())


def _queries(form: Form, name: str, errors: dict[str, str]) -> tuple[str, ...]:
    found = _lines(getattr(form, name))
    if len(found) > MAX_QUERIES:
        errors[name] = f"at most {MAX_QUERIES} queries, one per line"
    for q in found:
        if len(q) > MAX_QUERY_LENGTH:
            errors[name] = f"a query is at most {MAX_QUERY_LENGTH} characters"
            break
        try:
            validate_query(q)
        except QueryError as exc:
            errors[name] = f"“{q}”: {exc.reason} (at character {exc.position + 1})"
            break
    return found


def check_form(form: Form, *, need_email: bool) -> tuple[Subscriber | None, dict[str, str]]:
    """The subscriber the form describes, or the errors by field."""
    errors: dict[str, str] = {}
    email = ""
    if need_email:
        try:
            email = normalise_address(form.email)
        except Invalid as exc:
            errors["email"] = str(exc)
    keywords = _queries(form, "keywords", errors)
    exclude = _queries(form, "exclude", errors)
    try:
        sched = Schedule.make(form.send_at, form.timezone, form.frequency, form.weekday, form.days)
    except ScheduleError as exc:
        errors[exc.field] = exc.message
        sched = None
    if errors or sched is None:
        return None, errors
    sub = Subscriber(
        email=email or "unknown@invalid",
        keywords=keywords,
        exclude=exclude,
        send_at=sched.send_at_text,
        timezone=sched.timezone,
        frequency=sched.frequency,
        weekday=sched.weekday,
        days=sched.days or None,
    )
    return sub, errors


class Web:
    """The handlers, sharing the configuration, the store, the service and the secret."""

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
        self.secrets = [secret, self.store.secret()]
        self.clock = clock
        self.env: Environment = environment(self.config.templates_dir)
        self.confirmer = URLSafeTimedSerializer(secret, salt="digest-confirm")
        web = self.config.web
        self.by_ip = RateLimiter(web.subscribe_limit_ip)
        self.by_email = RateLimiter(web.subscribe_limit_email)
        self.previewer = Previewer(self.store)
        self.preview_limit = RateLimiter(120, window=60)
        self._etags: dict[tuple[str, int, int], str] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("site_title", self.config.feeds.title)
        context.setdefault("base_url", self.config.base_url)
        body = self.env.get_template(f"web/{name}.html").render(**context)
        return HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)

    def message(self, title: str, text: str, status: int = 200, **extra: Any) -> HTMLResponse:
        return self.page("message", status, title=title, text=text, **extra)

    def csrf_pair(self, request: Request) -> tuple[str, str]:
        """(cookie value, form field value) for this client."""
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not _FEED_TOKEN.match(cookie):
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
                return self.store.subscriber(value[6:])
            if value.isdigit():
                return self.store.subscriber_by_id(int(value))
        return None

    def link(self, purpose: str, sub: Subscriber) -> str:
        token = tokens.sign(self.secret, purpose, str(sub.id))
        return f"{self.config.base_url}/{purpose}?token={token}"

    def bad_link(self) -> HTMLResponse:
        return self.message(
            "This link is not valid",
            "It may have been cut short or changed. Use the link from your most recent "
            "email, or subscribe again.",
            400,
            action_url="/",
            action_text="Go to the subscribe page",
        )

    # -- subscribe --------------------------------------------------------------------------

    def form_page(self, request: Request, form: Form, status: int = 200, **extra: Any) -> Response:
        return self.with_csrf(
            request,
            "subscribe",
            status,
            form=form,
            errors=form.errors or {},
            weekdays=WEEKDAYS,
            default_zone=self.config.timezone,
            **extra,
        )

    async def home(self, request: Request) -> Response:
        defaults = self.config.schedule
        form = Form(
            send_at=defaults.send_at,
            timezone=self.config.timezone,
            frequency=defaults.frequency,
            weekday=defaults.weekday,
        )
        return self.form_page(request, form, guess_zone=True)

    async def read_form(self, request: Request) -> tuple[Form, str]:
        data = await request.form()

        def get(name: str, default: str = "") -> str:
            value = data.get(name, default)
            return value[:5000] if isinstance(value, str) else default

        form = Form(
            email=get("email"),
            keywords=get("keywords"),
            exclude=get("exclude"),
            send_at=get("send_at", "08:00"),
            timezone=get("timezone", self.config.timezone),
            frequency=get("frequency", "daily"),
            weekday=get("weekday", "mon"),
            days=tuple(v for v in data.getlist("days") if isinstance(v, str))[:7],
        )
        return form, get("csrf")

    async def subscribe(self, request: Request) -> Response:
        form, csrf = await self.read_form(request)
        if not self.csrf_ok(request, csrf):
            form.errors = {"form": "This form expired. Please check it and send it again."}
            return self.form_page(request, form, 400)
        sub, errors = check_form(form, need_email=True)
        if sub is None:
            form.errors = errors
            return self.form_page(request, form, 400)
        client = request.client.host if request.client else "unknown"
        wait = self.by_ip.allow(client) or self.by_email.allow(sub.email)
        if wait:
            minutes = max(1, round(wait / 60))
            response = self.message(
                "Too many attempts",
                f"Please try again in about {minutes} minute{'s' if minutes > 1 else ''}.",
                429,
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        row, before = self.store.request_subscription(sub)
        kind = "already" if before in ("active", "paused") else "confirm"
        log.info("subscribe request subscriber=%s was=%s", row.email, before)
        try:
            await self.send_confirmation(row, kind)
        except DigestError as exc:
            log.error("cannot send the confirmation to subscriber=%s: %s", row.email, exc)
            return self.message(
                "We could not send the email",
                "Something went wrong on our side. Please try again in a few minutes.",
                503,
            )
        # The same page whatever the address's history: it reveals nothing.
        return self.message(
            "Check your inbox",
            f"We sent an email to {row.email}. Follow the link in it to confirm your "
            f"subscription; it is valid for {self.config.web.confirm_hours} hours.",
        )

    async def send_confirmation(self, sub: Subscriber, kind: str) -> None:
        cfg = self.config
        now = self.clock()
        confirm_url = None
        if kind == "confirm":
            token = self.confirmer.dumps([sub.id, sub.email])
            confirm_url = f"{cfg.base_url}/confirm?token={token}"
        context = {
            "kind": kind,
            "site_title": cfg.feeds.title,
            "email": sub.email,
            "confirm_url": confirm_url,
            "manage_url": self.link("manage", sub),
            "hours": cfg.web.confirm_hours,
            "keywords": sub.keywords,
            "schedule": schedule_of(self.config, sub).describe(),
        }
        subject = (
            f"Confirm your subscription to {cfg.feeds.title}"
            if kind == "confirm"
            else f"You are already subscribed to {cfg.feeds.title}"
        )
        text = self.env.get_template("email/confirm.txt").render(**context)
        html = self.env.get_template("email/confirm.html").render(**context)
        message_id = make_message_id(cfg.mail.sender)
        data = build_message(
            sender=cfg.mail.sender,
            to=sub.email,
            to_name=None,
            subject=subject,
            text=text,
            html=html,
            message_id=message_id,
            date=now,
            list_id=cfg.mail.list_id or list_id_for(cfg.mail.sender),
            unsubscribe_url=self.link("unsubscribe", sub),
        )
        item = Outgoing(
            key="confirm",
            sender=sender_address(cfg.mail.sender),
            recipients=(sub.email,),
            data=data,
            message_id=message_id,
        )
        # A sender of its own: the scheduled pass may be using the shared one right now.
        outcome = await send_one(make_sender(cfg), item)
        if outcome is not None and not outcome.ok and outcome.error is not None:
            raise outcome.error

    async def confirm(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        max_age = self.config.web.confirm_hours * 3600
        try:
            sub_id, email = self.confirmer.loads(token, max_age=max_age)
            sub_id, email = int(sub_id), str(email)
        except SignatureExpired:
            return self.message(
                "This confirmation link has expired",
                f"Links are valid for {self.config.web.confirm_hours} hours. Subscribe "
                "again to get a new one.",
                400,
                action_url="/",
                action_text="Subscribe again",
            )
        except (BadSignature, ValueError, TypeError):
            return self.bad_link()
        sub = self.store.confirm(sub_id, email, self.clock())
        if sub is None:
            return self.message(
                "This link can no longer be used",
                "The subscription it confirms was changed since. Subscribe again if you "
                "want the digest.",
                400,
                action_url="/",
                action_text="Subscribe again",
            )
        log.info("confirmed subscriber=%s", sub.email)
        if self.service is not None:
            self.service.feeds_dirty = True
        return self.page(
            "confirmed",
            200,
            sub=sub,
            next_send=self.next_text(sub),
            **self.subscriber_links(sub),
        )

    def subscriber_links(self, sub: Subscriber) -> dict[str, str]:
        return {
            "manage_url": self.link("manage", sub),
            "unsubscribe_url": self.link("unsubscribe", sub),
            "feed_url": f"{self.config.base_url}/feeds/{sub.token}.atom",
        }

    def next_text(self, sub: Subscriber) -> str:
        sched = schedule_of(self.config, sub)
        when = sub.next_send_at or next_send(sched, self.clock())
        local = when.astimezone(sched.zone)
        return f"{local:%A %d %B %Y at %H:%M} ({sched.timezone})"

    # -- manage -----------------------------------------------------------------------------

    def form_of(self, sub: Subscriber) -> Form:
        sched = schedule_of(self.config, sub)
        return Form(
            email=sub.email,
            keywords="\n".join(sub.keywords),
            exclude="\n".join(sub.exclude),
            send_at=sched.send_at_text,
            timezone=sched.timezone,
            frequency=sched.frequency,
            weekday=sched.weekday,
            days=sched.days,
        )

    def manage_page(
        self, request: Request, sub: Subscriber, form: Form, status: int = 200, note: str = ""
    ) -> Response:
        return self.with_csrf(
            request,
            "manage",
            status,
            sub=sub,
            form=form,
            errors=form.errors or {},
            weekdays=WEEKDAYS,
            token=request.query_params.get("token", ""),
            note=note,
            next_send=self.next_text(sub) if sub.status == "active" else None,
            **self.subscriber_links(sub),
        )

    async def manage(self, request: Request) -> Response:
        sub = self.subscriber_from(request.query_params.get("token", ""), "manage")
        if sub is None or sub.id is None:
            return self.bad_link()
        if request.method == "GET":
            return self.manage_page(request, sub, self.form_of(sub))
        form, csrf = await self.read_form(request)
        data = await request.form()
        action = data.get("action", "save")
        if not self.csrf_ok(request, csrf):
            form.errors = {"form": "This form expired. Please check it and send it again."}
            return self.manage_page(request, sub, form, 400)
        if action == "pause":
            self.store.set_status(sub.id, "paused", "self", only_from=("active",))
            note = "Paused: no digests until you resume."
        elif action == "resume":
            self.store.set_status(sub.id, "active", None, only_from=("paused",))
            note = "Resumed."
        else:
            changed, errors = check_form(form, need_email=False)
            if changed is None:
                form.errors = errors
                return self.manage_page(request, sub, form, 400)
            self.store.update_preferences(sub.id, replace(changed, max_papers=sub.max_papers))
            note = "Saved."
            if self.service is not None:
                self.service.feeds_dirty = True
        log.info("manage subscriber=%s action=%s", sub.email, action)
        fresh = self.store.subscriber_by_id(sub.id) or sub
        return self.manage_page(request, fresh, self.form_of(fresh), note=note)

    # -- unsubscribe ------------------------------------------------------------------------

    async def unsubscribe(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        sub = self.subscriber_from(token, "unsubscribe")
        if sub is None or sub.id is None:
            return self.bad_link()
        if request.method == "GET":
            return self.page("unsubscribe", sub=sub, token=token)
        # RFC 8058: a POST (body "List-Unsubscribe=One-Click" or our page's button) acts at
        # once, without cookies or CSRF: the signed token is the authority.
        self.store.set_status(
            sub.id,
            "unsubscribed",
            "self",
            only_from=("active", "paused", "pending", "suspended"),
        )
        log.info("unsubscribed subscriber=%s", sub.email)
        if self.service is not None:
            self.service.feeds_dirty = True  # their private feed goes at the next pass
        return self.page("unsubscribed", sub=sub)

    # -- feeds ------------------------------------------------------------------------------

    def etag_of(self, path: Path, size: int, mtime_ns: int) -> str:
        key = (str(path), size, mtime_ns)
        tag = self._etags.get(key)
        if tag is None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
            tag = self._etags[key] = f'"{digest}"'
            if len(self._etags) > 20_000:
                self._etags.clear()
        return tag

    def serve_file(self, request: Request, path: Path, kind: str, private: bool) -> Response:
        try:
            stat = path.stat()
            etag = self.etag_of(path, stat.st_size, stat.st_mtime_ns)
        except OSError:
            return self.not_found()
        modified = datetime.fromtimestamp(int(stat.st_mtime), UTC)
        headers = {
            "ETag": etag,
            "Last-Modified": format_datetime(modified, usegmt=True),
            "Cache-Control": f"{'private' if private else 'public'}, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if not_modified(request, etag, modified):
            return Response(status_code=304, headers=headers)
        media = "application/atom+xml" if kind == "atom" else "application/rss+xml"
        try:
            body = path.read_bytes()
        except OSError:
            return self.not_found()
        return Response(body, media_type=f"{media}; charset=utf-8", headers=headers)

    async def public_feed(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        return self.serve_file(request, self.config.feeds.dir / f"feed.{kind}", kind, False)

    async def private_feed(self, request: Request) -> Response:
        token, kind = request.path_params["token"], request.path_params["kind"]
        if not _FEED_TOKEN.match(token):
            return self.not_found()
        sub = self.store.subscriber_by_token(token)
        if sub is None or sub.status not in ("active", "paused"):
            return self.not_found()  # unknown, or gone: even before its file is removed
        path = self.config.feeds.dir / "feeds" / f"{token}.{kind}"
        if path.exists():
            return self.serve_file(request, path, kind, True)
        if self.service is not None:
            self.service.feeds_dirty = True
        return Response(
            "Your feed is being prepared; try again in a minute.\n",
            status_code=503,
            headers={"Retry-After": "60"},
        )

    def not_found(self) -> HTMLResponse:
        return self.message("Not found", "There is nothing at this address.", 404)

    # -- archive, preview, health -----------------------------------------------------------

    async def archive_index(self, request: Request) -> Response:
        days = self.store.recent_dates(90)
        return self.page("archive_index", days=days)

    async def archive_day(self, request: Request) -> Response:
        try:
            day = date.fromisoformat(request.path_params["day"])
        except ValueError:
            return self.not_found()
        listing = self.store.listing(day)
        if listing is None:
            return self.message(
                "No listing for this date",
                f"Nothing was fetched for {day.isoformat()}.",
                404,
                action_url="/archive/",
                action_text="All dates",
            )
        views = [paper_view(Match(p, 0.0)) for p in listing.papers]
        newer = [d for d in self.store.recent_dates(90) if d > day]
        older = [d for d in self.store.recent_dates(90) if d < day]
        return self.page(
            "archive_day",
            day=day,
            papers=views,
            newer=min(newer) if newer else None,
            older=max(older) if older else None,
        )

    async def preview(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = self.preview_limit.allow(client)
        if wait:
            return JSONResponse(
                {"error": "too many previews; wait a little"},
                429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        params = request.query_params
        keywords = _lines(params.get("keywords", ""))[:MAX_QUERIES]
        exclude = _lines(params.get("exclude", ""))[:MAX_QUERIES]
        try:
            days = max(1, min(7, int(params.get("days", "1"))))
        except ValueError:
            days = 1
        try:
            found = await asyncio.to_thread(self.previewer.preview, keywords, exclude, days)
        except QueryError as exc:
            return JSONResponse({"error": f"{exc.reason} (at character {exc.position + 1})"}, 400)
        return JSONResponse(
            {
                "days": [
                    {
                        "date": d.day.isoformat(),
                        "total": d.total,
                        "count": len(d.matches),
                        "papers": [
                            {
                                "title": m.paper.title[:300],
                                "url": paper_view(m).url,
                                "terms": list(m.terms),
                            }
                            for m in d.matches[:10]
                        ],
                    }
                    for d in found
                ]
            },
            headers={"Cache-Control": "no-store"},
        )

    async def script(self, request: Request) -> Response:
        body = self.env.get_template("web/subscribe.js").render()
        return Response(body, media_type="text/javascript; charset=utf-8")

    async def healthz(self, request: Request) -> Response:
        runs = await asyncio.to_thread(self.store.runs, 50)
        last_ok = next((r for r in runs if r.outcome in ("ok", "empty")), None)
        running = self.service is not None and self.service.healthy
        body = {
            "status": "ok" if running else "unavailable",
            "scheduler": "running" if running else "stopped",
            "last_fetch": last_ok.started_at.isoformat() if last_ok else None,
            "last_error": self.service.last_error if self.service else None,
        }
        return JSONResponse(body, status_code=200 if running else 503)


def not_modified(request: Request, etag: str, modified: datetime) -> bool:
    """RFC 9110 §13.1: If-None-Match wins over If-Modified-Since; weak comparison."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        given = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return etag in given
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return modified <= since
    return False


def create_app(
    context: Callable[[], Context],
    service: Service | None,
    secret: bytes,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    start_service: bool = True,
) -> Starlette:
    """The ASGI app; with ``start_service`` the scheduler starts and stops with it."""
    web = Web(context, service, secret, clock=clock)
    timeout = web.config.web.shutdown_timeout

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if service is not None and start_service:
            service.start()
        yield
        if service is not None:
            await service.stop(timeout)

    routes: Sequence[Route] = [
        Route("/", web.home),
        Route("/subscribe", web.subscribe, methods=["POST"]),
        Route("/confirm", web.confirm),
        Route("/manage", web.manage, methods=["GET", "POST"]),
        Route("/unsubscribe", web.unsubscribe, methods=["GET", "POST"]),
        Route("/feed.{kind:str}", _kinds(web.public_feed)),
        Route("/feeds/{token:str}.{kind:str}", _kinds(web.private_feed)),
        Route("/archive/", web.archive_index),
        Route("/archive", web.archive_index),
        Route("/archive/{day:str}", web.archive_day),
        Route("/preview", web.preview),
        Route("/static/subscribe.js", web.script),
        Route("/healthz", web.healthz),
    ]

    async def missing(request: Request, exc: Exception) -> Response:
        return web.not_found()

    async def method(request: Request, exc: Exception) -> Response:
        return web.message("Not allowed", "This page does not take that request.", 405)

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("error on %s %s", request.method, request.url.path)
        return web.message("Something went wrong", "Please try again in a minute.", 500)

    app = Starlette(
        routes=list(routes),
        lifespan=lifespan,
        exception_handlers={404: missing, 405: method, Exception: crashed},
    )
    app.state.web = web
    return app


def _kinds(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def only_feeds(request: Request) -> Response:
        if request.path_params.get("kind") not in ("xml", "atom"):
            return HTMLResponse("Not found", 404)
        response: Response = await handler(request)
        return response

    return only_feeds
