"""A subscriber's own pages, reached by a signed link: manage (name, queries, schedule,
pause, resume) and unsubscribe (RFC 8058 one-click).

GET and HEAD show a page and change nothing; only a POST acts (a link checker's HEAD on an
unsubscribe link unsubscribes nobody). A subscriber defined in the configuration is the
operator's: its page shows the queries and schedule and offers only pause, resume and
unsubscribe (each pass would write the configuration's values back over an edit). With
several sources, the page offers a choice of them (:mod:`digest.serve.manage_sources`),
read-only for a subscriber of the configuration. Every subscriber's page lists their likes
and dislikes and imports a library (:mod:`digest.serve.manage_likes`)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from digest.models import Subscriber
from digest.schedule import WEEKDAYS
from digest.serve.feeds import refresh_private
from digest.serve.forms import Form, check_form, form_of, read_form
from digest.serve.manage_likes import LIKE_ACTIONS, ImportReport, like_action, likes_shown
from digest.serve.manage_sources import FIELD, SHOWN, SourceChoice, chosen_sources, source_choice
from digest.serve.pages import Handlers
from digest.store.subscriber_sources import save_sources

log = logging.getLogger("digest.web")

#: The states from which a subscriber can leave (unsubscribe, delete their data).
LEAVING = ("active", "paused", "pending", "suspended")


def resumable(sub: Subscriber) -> bool:
    """Whether the manage page offers Resume: paused, or unsubscribed by themselves or a
    bounce report (not by the operator, who took them out of the configuration)."""
    if sub.status == "paused":
        return True
    return sub.status == "unsubscribed" and sub.status_reason not in ("config", "removed")


class Managing(Handlers):
    """The manage and unsubscribe pages."""

    def manage_page(
        self,
        request: Request,
        sub: Subscriber,
        form: Form,
        status: int = 200,
        note: str = "",
        sources: SourceChoice | None = None,
        report: ImportReport | None = None,
    ) -> Response:
        assert sub.id is not None
        managed = self.store.members.managed_by_config(sub.id)
        return self.site.with_csrf(
            request,
            "manage",
            status,
            sub=sub,
            form=form,
            errors=form.errors or {},
            weekdays=WEEKDAYS,
            token=request.query_params.get("token", ""),
            note=note,
            managed=managed,
            resumable=resumable(sub),
            schedule=self.site.describe(sub),
            next_send=self.site.next_text(sub) if sub.status == "active" else None,
            sources=sources or source_choice(self.config, sub),
            likes=likes_shown(self.store, sub.id),
            report=report,
            upload_limit=self.config.web.max_body,
            **self.site.subscriber_links(sub),
        )

    async def manage(self, request: Request) -> Response:
        sub = self.site.subscriber_from(request.query_params.get("token", ""), "manage")
        if sub is None or sub.id is None:
            return self.site.bad_link()
        shown = form_of(self.config, sub)
        if request.method != "POST":
            return self.manage_page(request, sub, shown)
        form, csrf = await read_form(request, shown)
        data = await request.form()
        action = data.get("action", "save")
        if not self.site.csrf_ok(request, csrf):
            form.errors = {"form": "This form expired. Please check it and send it again."}
            return self.manage_page(request, sub, form, 400)
        log.info("manage subscriber=%s action=%s", sub.email, action)
        if action in LIKE_ACTIONS:  # theirs, also when the operator manages the rest
            note, shown.errors, report = await like_action(self.store, sub.id, str(action), data)
            if not shown.errors:  # their feed drops (or gets back) those papers now
                refresh_private(self.site, sub)
            return self.manage_page(
                request, sub, shown, 400 if shown.errors else 200, note, report=report
            )
        if action == "delete":  # the confirmation step: a page with one more button
            managed = self.store.members.managed_by_config(sub.id)
            return self.site.with_csrf(
                request, "delete", sub=sub, token=self._token(request), managed=managed
            )
        if action == "delete-confirmed":
            return self.delete_my_data(sub)
        if action in ("pause", "resume"):
            note = self.pause_or_resume(sub, action)
        elif self.store.members.managed_by_config(sub.id):
            shown.errors = {"form": "The site's operator sets this subscription: nothing saved."}
            return self.manage_page(request, sub, shown, 400)
        else:
            changed, errors = check_form(form, need_email=False)
            ticked = [v for v in data.getlist(FIELD) if isinstance(v, str)]
            posted = source_choice(self.config, sub, ticked) if SHOWN in data else None
            chosen, problem = chosen_sources(self.config, sub, ticked)
            if posted is not None and problem:
                errors[FIELD] = problem
            if changed is None or errors:
                form.errors = errors
                return self.manage_page(request, sub, form, 400, sources=posted)
            self.store.members.update_preferences(sub.id, changed)
            if posted is not None:  # the page showed the boxes: what they say
                save_sources(self.store.members.engine, sub.id, chosen)
            note = "Saved."
            # Their feed follows their new queries now (for a web server serving feeds.dir
            # too), not at the next pass.
            refresh_private(self.site, self.store.members.subscriber_by_id(sub.id) or sub)
        fresh = self.store.members.subscriber_by_id(sub.id) or sub
        return self.manage_page(request, fresh, form_of(self.config, fresh), note=note)

    @staticmethod
    def _token(request: Request) -> str:
        return request.query_params.get("token", "")

    def pause_or_resume(self, sub: Subscriber, action: str) -> str:
        """Pause an active subscription, or resume a paused or unsubscribed one (not one the
        operator took out of the configuration); the words for the page."""
        assert sub.id is not None
        if action == "pause":
            self.store.members.set_status(sub.id, "paused", "self", only_from=("active",))
            return "Paused: no digests until you resume."
        if not resumable(sub):
            return "This subscription cannot be resumed here."
        self.store.members.set_status(sub.id, "active", None, only_from=("paused", "unsubscribed"))
        self.site.feeds_changed()
        return "Resumed."

    def delete_my_data(self, sub: Subscriber) -> Response:
        """Delete a subscriber's data: their digests (what was sent, when) and their row.

        A subscriber of the configuration keeps the row, unsubscribed: the configuration
        file lists the address (the operator's), and each pass would add a missing row back,
        active, so deleting it would subscribe them again; their history goes all the
        same."""
        assert sub.id is not None
        self.store.outbox.forget(sub.id)
        self.store.likes.forget(sub.id)  # their likes and dislikes are their data too
        if self.store.members.managed_by_config(sub.id):
            self.store.members.set_status(sub.id, "unsubscribed", "self", only_from=LEAVING)
            text = (
                "Your history is deleted and you will get no more digests. Your address is "
                "in this site's configuration: ask its operator to remove it."
            )
        else:
            self.store.members.delete(sub.id)
            text = (
                "Your address, your keywords and the record of every digest we sent you are "
                "deleted. You can subscribe again at any time."
            )
        log.info("deleted subscriber=%s", sub.id)
        self.site.feeds_changed()  # their private feed goes at the next pass
        return self.site.message(
            "Your data is deleted", text, action_url="/", action_text="Go to the subscribe page"
        )

    async def unsubscribe(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        sub = self.site.subscriber_from(token, "unsubscribe")
        if sub is None or sub.id is None:
            return self.site.bad_link()
        if request.method != "POST":  # GET, HEAD: the page and its button, nothing more
            return self.site.page("unsubscribe", sub=sub, token=token)
        # RFC 8058: a POST (body "List-Unsubscribe=One-Click" or our page's button) acts at
        # once, without cookies or CSRF: the signed token is the authority.
        self.store.members.set_status(sub.id, "unsubscribed", "self", only_from=LEAVING)
        log.info("unsubscribed subscriber=%s", sub.email)
        self.site.feeds_changed()  # their private feed goes at the next pass
        return self.site.page("unsubscribed", sub=sub, manage_url=self.site.link("manage", sub))
