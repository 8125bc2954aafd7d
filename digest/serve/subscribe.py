"""Subscribing: the form page (and its script), the subscribe request (double opt-in, rate
limited), the confirmation email and the confirmation link.

The link's GET (and HEAD) only shows what it would confirm, with one button: a mail
scanner or a prefetcher that follows it confirms nothing. The button's POST confirms the
request the link was sent for (its queries and schedule), once: the link carries that
request's nonce, and a newer request (or confirming) replaces it."""

from __future__ import annotations

import logging
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from digest.compose import build_message, list_id_for, make_message_id, sender_address
from digest.deliver import Outgoing, send_one
from digest.errors import DigestError, PermanentDeliveryError
from digest.models import Subscriber
from digest.run import make_sender
from digest.schedule import WEEKDAYS
from digest.serve.feeds import refresh_private
from digest.serve.forms import Form, check_form, read_form
from digest.serve.limits import RateLimiter
from digest.serve.pages import Handlers, Site
from digest.serve.scheduler import schedule_of

log = logging.getLogger("digest.web")


class Subscribing(Handlers):
    """The subscribe page, the subscribe request and the confirmation."""

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self.confirmer = URLSafeTimedSerializer(site.secret, salt="digest-confirm")
        web, events = site.config.web, site.store.limits
        self.by_ip = RateLimiter(web.subscribe_limit_ip, name="subscribe-ip", events=events)
        self.by_email = RateLimiter(
            web.subscribe_limit_email, name="subscribe-email", events=events
        )

    def form_page(self, request: Request, form: Form, status: int = 200, **extra: Any) -> Response:
        return self.site.with_csrf(
            request,
            "subscribe",
            status,
            form=form,
            errors=form.errors or {},
            weekdays=WEEKDAYS,
            default_zone=self.config.timezone,
            **extra,
        )

    def blank_form(self) -> Form:
        defaults = self.config.schedule
        return Form(
            send_at=defaults.send_at,
            timezone=self.config.timezone,
            frequency=defaults.frequency,
            weekday=defaults.weekday,
            abstract=self.config.mail.abstract,
        )

    async def home(self, request: Request) -> Response:
        return self.form_page(request, self.blank_form(), guess_zone=True)

    async def subscribe(self, request: Request) -> Response:
        form, csrf = await read_form(request, self.blank_form())
        if not self.site.csrf_ok(request, csrf):
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
            response = self.site.message(
                "Too many attempts",
                f"Please try again in about {minutes} minute{'s' if minutes > 1 else ''}.",
                429,
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        asked = self.store.members.request_subscription(sub)
        row = asked.subscriber
        log.info("subscribe request subscriber=%s was=%s", row.email, asked.before)
        try:
            await self.send_confirmation(row, asked.nonce)
        except DigestError as exc:
            log.error("cannot send the confirmation to subscriber=%s: %s", row.email, exc)
            if asked.before == "new" and asked.nonce is not None and row.id is not None:
                # nothing to confirm was sent: no pending row is left for the address
                self.store.members.withdraw_request(row.id, asked.nonce)
            if isinstance(exc, PermanentDeliveryError):  # the address itself was refused
                form.errors = {"email": "our mail server cannot send to this address"}
                return self.form_page(request, form, 400)
            return self.site.message(
                "We could not send the email",
                "Something went wrong on our side. Please try again in a few minutes.",
                503,
            )
        # The same page whatever the address's history: it reveals nothing.
        return self.site.message(
            "Check your inbox",
            f"We sent an email to {row.email}. Follow the link in it to confirm your "
            f"subscription; it is valid for {self.config.web.confirm_hours} hours.",
        )

    async def send_confirmation(self, sub: Subscriber, nonce: str | None) -> None:
        """The email with the link confirming request ``nonce``; without one (the address
        is subscribed already) the email that says so, with its manage link."""
        cfg = self.config
        now = self.site.clock()
        kind = "already" if nonce is None else "confirm"
        confirm_url = None
        if nonce is not None:
            token = self.confirmer.dumps([sub.id, sub.email, nonce])
            confirm_url = f"{cfg.base_url}/confirm?token={token}"
        context = {
            "kind": kind,
            "site_title": cfg.feeds.title,
            "email": sub.email,
            "confirm_url": confirm_url,
            "manage_url": self.site.link("manage", sub),
            "hours": cfg.web.confirm_hours,
            "keywords": sub.keywords,
            "exclude": sub.exclude,
            "schedule": schedule_of(self.config, sub).describe(),
        }
        subject = (
            f"Confirm your subscription to {cfg.feeds.title}"
            if kind == "confirm"
            else f"You are already subscribed to {cfg.feeds.title}"
        )
        text = self.site.env.get_template("email/confirm.txt").render(**context)
        html = self.site.env.get_template("email/confirm.html").render(**context)
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
            unsubscribe_url=self.site.link("unsubscribe", sub),
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
        """GET, HEAD: what the link would confirm, and a "Confirm" button; POST: confirm."""
        token = request.query_params.get("token", "")
        found = self.read_token(token)
        if isinstance(found, Response):
            return found
        sub_id, email, nonce = found
        if request.method != "POST":
            pending = self.store.members.pending_request(sub_id, nonce)
            if pending is None or pending.email != email:
                return self.unusable(sub_id, email)
            return self.site.page(
                "confirm", sub=pending, token=token, schedule=self.site.describe(pending)
            )
        sub = self.store.members.confirm(sub_id, email, self.site.clock(), nonce=nonce)
        if sub is None:
            return self.unusable(sub_id, email)
        log.info("confirmed subscriber=%s", sub.email)
        refresh_private(self.site, sub)  # their feed exists now, not at the next pass
        return self.site.page(
            "confirmed",
            200,
            sub=sub,
            next_send=self.site.next_text(sub),
            **self.site.subscriber_links(sub),
        )

    def read_token(self, token: str) -> tuple[int, str, str | None] | Response:
        """(subscriber id, address, request nonce) a confirmation link names, or the page
        saying why it cannot be used. Links sent before nonces existed carry none."""
        max_age = self.config.web.confirm_hours * 3600
        try:
            sub_id, email, *rest = self.confirmer.loads(token, max_age=max_age)
            nonce = str(rest[0]) if rest else None
            return int(sub_id), str(email), nonce
        except SignatureExpired:
            return self.site.message(
                "This confirmation link has expired",
                f"Links are valid for {self.config.web.confirm_hours} hours. Subscribe "
                "again to get a new one.",
                400,
                action_url="/",
                action_text="Subscribe again",
            )
        except (BadSignature, ValueError, TypeError):
            return self.site.bad_link()

    def unusable(self, sub_id: int, email: str) -> Response:
        """The page for a good link that confirms nothing (any more)."""
        now = self.store.members.subscriber_by_id(sub_id)
        if now is not None and now.email == email and now.status in ("active", "paused"):
            return self.site.message(
                "Already confirmed",
                f"{email} is subscribed: this link has nothing left to do.",
            )
        return self.site.message(
            "This link can no longer be used",
            "The subscription it confirms was changed since (a newer request, or an "
            "unsubscribe). Use the link in your most recent email, or subscribe again.",
            400,
            action_url="/",
            action_text="Subscribe again",
        )

    async def script(self, request: Request) -> Response:
        body = self.site.env.get_template("web/subscribe.js").render()
        return Response(body, media_type="text/javascript; charset=utf-8")
