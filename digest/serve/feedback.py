"""``/more`` and ``/less``: the "more like this" and "less like this" links of each paper in
a digest (:mod:`digest.compose.feedback`; issue 17).

``GET /more?token=T`` (and HEAD) shows the paper's title and one button, and changes
nothing: mail scanners and link checkers fetch every link of an email. The button POSTs
(with the page's CSRF field, as every form of the site) and records a like (``/more``) or
a dislike (``/less``) of origin ``email``; the page then says what was recorded and has an
Undo button, whose POST removes it. A token that is not one of ours (forged, cut, made for
another paper, subscriber or purpose) gets the "link not valid" page (400); a token of a
subscriber who deleted their data gets a page saying so (410).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from digest.compose import tokens
from digest.compose.feedback import FEED_MARK, KINDS, read_feedback_token
from digest.compose.text import clean
from digest.models import Subscriber
from digest.serve.feeds import refresh_private
from digest.serve.pages import Handlers
from digest.store.like_rows import LikeEntry

log = logging.getLogger("digest.web")


class Feedback(Handlers):
    """The handlers of ``/more`` and ``/less``."""

    async def more(self, request: Request) -> Response:
        return await self.feedback(request, "more")

    async def less(self, request: Request) -> Response:
        return await self.feedback(request, "less")

    def token_of(self, token: str) -> tuple[int, str] | None:
        """(subscriber id, paper key) of a feedback token signed with one of the site's
        secrets (the current one first), or None."""
        for secret in self.site.secrets:
            try:
                return read_feedback_token(secret, token)
            except tokens.BadToken:
                continue
        return None

    async def feedback(self, request: Request, kind: str) -> Response:
        token = request.query_params.get("token", "")
        found = self.token_of(token)
        if found is None and token.startswith(FEED_MARK):  # a feed file served as it is
            return self.site.message(
                "Open this link from your feed",
                "This link names only the paper: it works in your private feed as this site "
                "serves it (its address is on your subscription's page) and in your emails.",
                400,
            )
        if found is None:
            return self.site.bad_link()
        sid, key = found
        sub = self.store.members.subscriber_by_id(sid)
        if sub is None or sub.id is None:
            return self.site.message(
                "This subscription is gone",
                "The address this link was sent to is no longer subscribed here, and its "
                "data is deleted: nothing to record. You can subscribe again at any time.",
                410,
                action_url="/",
                action_text="Go to the subscribe page",
            )
        paper = self.store.papers.papers_by_key([key]).get(key)
        title = (clean(paper.title) if paper is not None else "") or clean(key)
        page: dict[str, Any] = {
            "kind": kind,
            "title": title,
            "key": key,
            "token": token,
            "sub": sub,
        }
        if request.method != "POST":  # GET, HEAD: the page and its button, nothing more
            return self.site.with_csrf(request, "feedback", state="ask", **page)
        data = await request.form()
        csrf = data.get("csrf", "")
        if not self.site.csrf_ok(request, csrf if isinstance(csrf, str) else ""):
            error = "This page expired. Please press the button again."
            return self.site.with_csrf(request, "feedback", 400, state="ask", error=error, **page)
        if data.get("action") == "undo":
            removed = self.store.likes.remove(sid, [key])
            refresh_private(self.site, sub)  # the paper is back in their feed now
            log.info("feedback undone subscriber=%s kind=%s removed=%d", sid, kind, removed)
            return self.site.with_csrf(request, "feedback", state="undone", **page)
        return self.record(request, sub, kind, key, page)

    def record(
        self, request: Request, sub: Subscriber, kind: str, key: str, page: dict[str, Any]
    ) -> Response:
        """Record the like or dislike and show it, with its Undo button."""
        assert sub.id is not None
        counts = self.store.likes.add(sub.id, [LikeEntry(key)], KINDS[kind], "email")
        rejected = counts.rejected
        if rejected:  # a key no longer usable (cannot happen for a key we sent): say so
            log.warning("feedback of subscriber=%s on %r: %s", sub.id, key, rejected[0].reason)
            return self.site.message(
                "This paper cannot be recorded",
                f"We could not record it: {rejected[0].reason}.",
                400,
                action_url=self.site.link("manage", sub),
                action_text="Manage your subscription",
            )
        outcome = counts.results[0].outcome if counts.results else "unchanged"
        refresh_private(self.site, sub)  # never in their feed again, from now on
        log.info("feedback subscriber=%s kind=%s outcome=%s", sub.id, kind, outcome)
        return self.site.with_csrf(
            request,
            "feedback",
            state="recorded",
            outcome=outcome,
            manage_url=self.site.link("manage", sub),
            **page,
        )
