"""The web app in-process (httpx over ASGI) with a real SQLite file and a real SMTP server:
subscribe with double opt-in, confirm, manage, one-click unsubscribe, feeds with conditional
GET, the archive, the preview, CSRF, rate limits, forged and expired tokens, escaping."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.applications import Starlette

from digest.compose import tokens
from digest.config import load
from digest.models import Subscriber
from digest.run import Context, make_context, write_feeds
from digest.serve import CSRF_COOKIE, RateLimiter, Service, create_app, not_modified
from digest.store import PlannedDelivery, Store, new_delivery_id
from tests.support.listings import item, write_days, write_site_config
from tests.support.smtpd import SmtpServer

SECRET = b"test-secret-0123456789abcdef"
DAY = date(2026, 11, 16)
HOSTILE = '<script>alert("x")</script> Diffusion & <b>Bold</b> \u202eevil'


class App:
    """The app, its store, its SMTP server and an HTTP client with a cookie jar."""

    def __init__(
        self,
        ctx: Context,
        service: Service,
        client: httpx.AsyncClient,
        server: SmtpServer,
        asgi: Starlette,
    ):
        self.ctx = ctx
        self.asgi = asgi  # the app itself: its routes
        self.store = ctx.store
        self.service = service
        self.client = client
        self.server = server

    async def csrf(self) -> str:
        page = await self.client.get("/")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    async def subscribe(self, email: str, **fields: Any) -> httpx.Response:
        data = {
            "csrf": await self.csrf(),
            "email": email,
            "keywords": "diffusion",
            "exclude": "",
            "send_at": "08:00",
            "timezone": "Europe/Paris",
            "frequency": "daily",
            "weekday": "mon",
            **fields,
        }
        return await self.client.post("/subscribe", data=data)

    def mails_to(self, email: str) -> list[Any]:
        return [m.message for m in self.server.messages if email in m.rcpt_tos]

    def confirm_url(self, email: str) -> str:
        text = self.mails_to(email)[-1].get_body(("plain",)).get_content()
        found = re.search(r"http://testserver(/confirm\?token=\S+)", text)
        assert found, text
        return found.group(1)

    async def confirm(self, email: str) -> httpx.Response:
        """Open the newest confirmation link and press its one button (a GET confirms
        nothing)."""
        url = self.confirm_url(email)
        page = await self.client.get(url)
        assert page.status_code == 200 and page.text.count("<button") == 1, page.text
        return await self.client.post(url)

    def link(self, purpose: str, sub: Subscriber) -> str:
        return f"/{purpose}?token={tokens.sign(SECRET, purpose, str(sub.id))}"

    async def save(self, sub: Subscriber, **fields: str) -> httpx.Response:
        """Open ``sub``'s manage page and save it with ``fields`` over a daily digest of
        ``diffusion`` at 08:00 UTC."""
        page = await self.client.get(self.link("manage", sub))
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        data = {
            "csrf": csrf.group(1),
            "keywords": "diffusion",
            "exclude": "",
            "send_at": "08:00",
            "timezone": "UTC",
            "frequency": "daily",
            "weekday": "mon",
            "action": "save",
            **fields,
        }
        return await self.client.post(self.link("manage", sub), data=data)

    async def act(self, sub: Subscriber, action: str, page: str = "") -> httpx.Response:
        """Press the button ``action`` of ``sub``'s manage page (or of ``page``, as shown)."""
        if not page:
            page = (await self.client.get(self.link("manage", sub))).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf and f'value="{action}"' in page, page
        data = {"csrf": csrf.group(1), "action": action}
        return await self.client.post(self.link("manage", sub), data=data)


@pytest.fixture
async def app(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> AsyncIterator[App]:
    """The site; ``parametrize("app", [TOML], indirect=True)`` adds TOML to its config."""
    server = smtp_server()
    write_days(
        tmp_path / "listings",
        {
            DAY.isoformat(): [
                item("2611.00001", "Diffusion models for proteins", "We study diffusion."),
                item("2611.00002", "A survey of robots", "Robots everywhere."),
                item("2611.00003", HOSTILE, "javascript:alert(1) in an abstract"),
            ]
        },
    )
    path = write_site_config(
        tmp_path,
        server,
        top='base_url = "http://testserver"\ntimezone = "UTC"',
        more='[feeds]\ntitle = "Test Papers"\n' + getattr(request, "param", ""),
    )
    config = load(path)
    store = Store(config.database)
    store.members.sync_config_subscribers(config.subscribers)  # as each pass does
    ctx = make_context(config, store, now=datetime(2026, 11, 16, 7, tzinfo=UTC))
    listing = await ctx.source.fetch(DAY)
    store.papers.save_listing(listing)
    write_feeds(ctx)
    service = Service(lambda now: replace(ctx, now=now))
    web_app = create_app(lambda: ctx, service, SECRET, start_service=False)
    transport = httpx.ASGITransport(app=web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield App(ctx, service, client, server, web_app)
    store.close()


# -- subscribe ------------------------------------------------------------------------------


async def test_the_subscribe_page_sets_a_csrf_cookie_and_safe_headers(app: App) -> None:
    page = await app.client.get("/")
    assert page.status_code == 200
    assert 'name="email"' in page.text and 'name="keywords"' in page.text
    assert 'data-guess="1"' in page.text  # the browser's zone replaces the default
    assert CSRF_COOKIE in page.cookies
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    script = await app.client.get("/static/subscribe.js")
    assert "resolvedOptions().timeZone" in script.text


async def test_subscribing_sends_one_confirmation_and_records_a_pending_subscriber(
    app: App,
) -> None:
    page = await app.subscribe("Ada@Example.org", keywords='diffusion\n"language model"')
    assert page.status_code == 200
    assert "Check your inbox" in page.text
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None and sub.status == "pending"
    assert sub.keywords == ("diffusion", '"language model"')
    assert (sub.send_at, sub.timezone) == ("08:00", "Europe/Paris")
    [mail] = app.mails_to("ada@example.org")
    assert mail["Subject"].startswith("Confirm your subscription")
    assert "List-Unsubscribe" in mail
    assert "/confirm?token=" in mail.get_body(("plain",)).get_content()


async def test_the_page_never_reveals_an_existing_subscription(app: App) -> None:
    first = await app.subscribe("ada@example.org")
    await app.confirm("ada@example.org")
    again = await app.subscribe("ada@example.org", keywords="robots")
    fresh = await app.subscribe("bo@example.org")

    def body(r: httpx.Response) -> str:
        return re.sub(r"\S+@example\.org", "ADDRESS", r.text)

    assert body(first) == body(again) == body(fresh)
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None and sub.status == "active"
    assert sub.keywords == ("diffusion",)  # a stranger cannot change someone's queries
    last = app.mails_to("ada@example.org")[-1]
    assert "already subscribed" in last["Subject"]
    assert "/manage?token=" in last.get_body(("plain",)).get_content()


async def test_a_post_without_the_csrf_token_is_refused(app: App) -> None:
    for csrf in ("", "forged.token", tokens.sign(b"other secret", "csrf", "x")):
        page = await app.client.post(
            "/subscribe",
            data={"csrf": csrf, "email": "eve@example.org", "send_at": "08:00", "timezone": "UTC"},
        )
        assert page.status_code == 400
        assert "This form expired" in page.text
    assert app.store.members.subscriber("eve@example.org") is None
    assert app.server.messages == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not an address"}, "expected an email address"),
        ({"keywords": "diffusion AND"}, "at character"),
        ({"keywords": '"unclosed phrase'}, "at character"),
        ({"send_at": "25:00"}, "HH:MM"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"frequency": "hourly"}, '"daily" or "weekly"'),
        ({"weekday": "someday"}, "expected one of mon"),
        ({"keywords": "\n".join(f"q{i}" for i in range(30))}, "at most 20 queries"),
    ],
)
async def test_bad_input_is_shown_on_the_form_and_nothing_is_stored(
    app: App, fields: dict[str, str], message: str
) -> None:
    page = await app.subscribe(fields.pop("email", "ada@example.org"), **fields)
    assert page.status_code == 400
    assert message in page.text.replace("&#34;", '"').replace("&quot;", '"')
    assert app.store.members.subscribers() == []
    assert app.server.messages == []


async def test_what_was_typed_is_escaped_when_shown_again(app: App) -> None:
    page = await app.subscribe("ada@example.org", keywords="<script>alert(1)</script> AND")
    assert page.status_code == 400
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)" in page.text


@pytest.mark.parametrize(
    "char", ["\x1b", "\x07", "\x00", "\u202e", "\u2066", "\u200f", "\u2028", "\x9b"]
)
@pytest.mark.parametrize("field", ["keywords", "exclude", "name"])
async def test_control_characters_and_bidi_overrides_are_refused(
    app: App, field: str, char: str
) -> None:
    """ESC [2J would clear the operator's terminal in `digest subscribers list`; U+202E
    shows a query reversed."""
    page = await app.subscribe("ada@example.org", **{field: f"diff{char}[2Jusion"})
    assert page.status_code == 400
    assert f"(U+{ord(char):04X})" in page.text
    assert app.store.members.subscribers() == []
    assert app.server.messages == []


async def test_tabs_in_queries_and_accents_in_names_are_fine(app: App) -> None:
    page = await app.subscribe(
        "ada@example.org", keywords="diffusion\tmodel", name="Zoë Nuñez-Ångström ‍"
    )
    assert page.status_code == 200, page.text
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None and sub.name == "Zoë Nuñez-Ångström ‍".strip()


async def test_an_address_with_a_non_ascii_local_part_is_a_form_error(app: App) -> None:
    page = await app.subscribe("jörg@example.org")
    assert page.status_code == 400
    assert "before the @" in page.text and 'name="email"' in page.text
    assert app.store.members.subscribers() == []  # no pending row left behind
    assert app.server.messages == []


async def test_an_address_the_mail_server_refuses_is_a_form_error_and_leaves_no_row(
    app: App,
) -> None:
    app.server.set_faults(rcpt_replies={"nobody@example.org": "550 5.1.1 No such user"})
    page = await app.subscribe("nobody@example.org")
    assert page.status_code == 400
    assert "cannot send to this address" in page.text and 'name="email"' in page.text
    assert app.store.members.subscribers() == []


@pytest.mark.slow  # the sender retries the refused connection for ~5 s before giving up
async def test_a_confirmation_that_cannot_be_sent_leaves_no_pending_row(app: App) -> None:
    app.server.set_faults(greeting="421 4.3.2 Too busy", times=None)
    page = await app.subscribe("ada@example.org")
    assert page.status_code == 503 and "could not send" in page.text
    assert app.store.members.subscribers() == []
    app.server.set_faults()
    assert (await app.subscribe("ada@example.org")).status_code == 200  # later, it works
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None and sub.status == "pending"


async def test_subscribe_attempts_are_limited_per_address(app: App) -> None:
    codes = [(await app.subscribe("ada@example.org")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = await app.subscribe("ada@example.org")
    assert int(limited.headers["retry-after"]) > 0
    assert len(app.mails_to("ada@example.org")) == 3


async def test_subscribe_attempts_are_limited_per_client(app: App) -> None:
    codes = [(await app.subscribe(f"r{i}@example.org")).status_code for i in range(11)]
    assert codes == [200] * 10 + [429]
    assert "Too many attempts" in (await app.subscribe("x@example.org")).text


def test_the_rate_limiter_forgets_after_its_window() -> None:
    limiter = RateLimiter(2, window=10)
    assert limiter.allow("k", 0) == 0 and limiter.allow("k", 1) == 0
    assert limiter.allow("k", 2) == pytest.approx(8)
    assert limiter.allow("k", 10.5) == 0


# -- confirm --------------------------------------------------------------------------------


async def test_confirming_activates_once_and_schedules_no_immediate_send(app: App) -> None:
    await app.subscribe("ada@example.org")
    url = app.confirm_url("ada@example.org")
    page = await app.confirm("ada@example.org")
    assert page.status_code == 200 and "subscribed" in page.text
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None and sub.status == "active" and sub.next_send_at is None
    assert f"/feeds/{sub.token}.atom" in page.text
    again = await app.client.post(url)  # clicking twice is harmless
    assert again.status_code == 200 and "Already confirmed" in again.text
    assert app.store.members.subscriber("ada@example.org") == sub
    assert app.service.feeds_dirty


async def test_the_confirmation_email_lists_the_queries_and_the_excluded_ones(app: App) -> None:
    await app.subscribe(
        "ada@example.org", keywords="diffusion\nrobot*", exclude="survey\nmedical imaging"
    )
    [mail] = app.mails_to("ada@example.org")
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Keywords: diffusion; robot*" in body
        assert "Never: survey; medical imaging" in body
    await app.subscribe("bo@example.org", keywords="diffusion")
    [plain] = app.mails_to("bo@example.org")
    assert "Never:" not in plain.get_body(("plain",)).get_content()


async def test_forged_and_foreign_tokens_get_a_clear_page(app: App) -> None:
    await app.subscribe("ada@example.org")
    good = app.confirm_url("ada@example.org")
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None
    for url in (
        good[:-3] + "AAA",
        "/confirm?token=",
        "/confirm",
        "/confirm?token=%00%ff",
        app.link("unsubscribe", sub).replace("/unsubscribe", "/confirm"),
    ):
        for page in (await app.client.get(url), await app.client.post(url)):
            assert page.status_code == 400, url
            assert "not valid" in page.text
            assert "Traceback" not in page.text
    assert app.store.members.subscriber("ada@example.org") == sub


async def test_an_expired_confirmation_link_says_so(app: App) -> None:
    await app.subscribe("ada@example.org")
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None

    class Yesterday(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 73 * 3600

    old = URLSafeTimedSerializer(SECRET, salt="digest-confirm", signer=Yesterday)
    page = await app.client.get(f"/confirm?token={old.dumps([sub.id, sub.email])}")
    assert page.status_code == 400
    assert "expired" in page.text
    assert app.store.members.subscriber("ada@example.org") == sub


# -- manage, pause, unsubscribe -------------------------------------------------------------


async def active(app: App, email: str) -> Subscriber:
    await app.subscribe(email)
    await app.confirm(email)
    sub = app.store.members.subscriber(email)
    assert sub is not None and sub.status == "active"
    return sub


async def test_the_manage_page_edits_queries_and_schedule(app: App) -> None:
    ada = await active(app, "ada@example.org")
    bo = await active(app, "bo@example.org")
    page = await app.client.get(app.link("manage", ada))
    assert page.status_code == 200 and "diffusion" in page.text
    saved = await app.save(
        ada,
        keywords="robots\nagent*",
        exclude="survey",
        send_at="06:45",
        timezone="Asia/Tokyo",
        frequency="weekly",
        weekday="fri",
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    changed = app.store.members.subscriber("ada@example.org")
    assert changed is not None
    assert changed.keywords == ("robots", "agent*") and changed.exclude == ("survey",)
    assert (changed.send_at, changed.timezone, changed.frequency, changed.weekday) == (
        "06:45",
        "Asia/Tokyo",
        "weekly",
        "fri",
    )
    assert app.store.members.subscriber("bo@example.org") == bo  # only its own subscriber


async def test_the_abstract_is_chosen_on_subscribing_and_on_the_manage_page(app: App) -> None:
    home = await app.client.get("/")
    assert '<option value="short" selected>' in home.text  # mail.abstract, the default
    await app.subscribe("ada@example.org", abstract="none")
    await app.confirm("ada@example.org")
    ada = app.store.members.subscriber("ada@example.org")
    assert ada is not None and ada.abstract == "none"
    page = await app.client.get(app.link("manage", ada))
    assert '<option value="none" selected>' in page.text
    saved = await app.save(ada, abstract="full")
    assert saved.status_code == 200 and '<option value="full" selected>' in saved.text
    changed = app.store.members.subscriber("ada@example.org")
    assert changed is not None and changed.abstract == "full"
    bad = await app.save(ada, abstract="most")
    assert bad.status_code == 400 and 'aria-describedby="abstract-error"' in bad.text
    kept = app.store.members.subscriber("ada@example.org")
    assert kept is not None and kept.abstract == "full"


async def test_saving_the_manage_form_keeps_what_it_did_not_show(app: App) -> None:
    """The name was erased by every save; max_papers (not on the page) must stay too."""
    app.store.members.add_subscriber(
        Subscriber(email="ada@example.org", name="Ada Okafor", keywords=("a",), max_papers=7)
    )
    ada = app.store.members.subscriber("ada@example.org")
    assert ada is not None
    page = await app.client.get(app.link("manage", ada))
    assert 'name="name" value="Ada Okafor"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    form = {"csrf": csrf.group(1), "keywords": "robots", "send_at": "07:00", "timezone": "UTC"}
    saved = await app.client.post(app.link("manage", ada), data=form)  # a page without "name"
    assert saved.status_code == 200 and "Saved." in saved.text
    kept = app.store.members.subscriber("ada@example.org")
    assert kept is not None
    assert (kept.name, kept.keywords, kept.max_papers) == ("Ada Okafor", ("robots",), 7)
    renamed = await app.client.post(app.link("manage", ada), data={**form, "name": " Ada O. "})
    assert renamed.status_code == 200
    assert (app.store.members.subscriber("ada@example.org") or ada).name == "Ada O."
    bad = await app.client.post(app.link("manage", ada), data={**form, "name": "Ada\x1b[2J"})
    assert bad.status_code == 400 and "(U+001B)" in bad.text
    assert (app.store.members.subscriber("ada@example.org") or ada).name == "Ada O."


OPERATOR_SUBSCRIBER = """
[[subscribers]]
email = "op@example.org"
name = "Operator's Friend"
keywords = ["diffusion"]
"""


@pytest.mark.parametrize("app", [OPERATOR_SUBSCRIBER], indirect=True)
async def test_a_subscriber_of_the_config_can_only_pause_or_unsubscribe_on_the_web(
    app: App,
) -> None:
    """Each pass writes the config's queries back: the page must not offer to edit them
    (it said "Saved." and the next pass undid it)."""
    op = app.store.members.subscriber("op@example.org")
    assert op is not None and op.status == "active"
    page = await app.client.get(app.link("manage", op))
    assert "managed by the operator" in page.text
    assert "<textarea" not in page.text and 'value="save"' not in page.text
    assert 'value="pause"' in page.text and "/unsubscribe?token=" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    form = {"csrf": csrf.group(1), "send_at": "08:00", "timezone": "UTC"}
    edit = await app.client.post(
        app.link("manage", op), data={**form, "keywords": "robots", "action": "save"}
    )
    assert edit.status_code == 400 and "Saved." not in edit.text
    assert app.store.members.subscriber("op@example.org") == op
    paused = await app.client.post(app.link("manage", op), data={**form, "action": "pause"})
    assert paused.status_code == 200 and 'value="resume"' in paused.text
    app.store.members.sync_config_subscribers(app.ctx.config.subscribers)  # the next pass
    after = app.store.members.subscriber("op@example.org")
    assert after is not None and after.status == "paused"


@pytest.mark.parametrize("app", [OPERATOR_SUBSCRIBER], indirect=True)
async def test_a_subscriber_of_the_config_who_subscribes_again_gets_the_config_queries(
    app: App,
) -> None:
    op = app.store.members.subscriber("op@example.org")
    assert op is not None
    await app.client.post(app.link("unsubscribe", op))
    await app.subscribe("op@example.org", keywords="robots", send_at="06:00")
    pending = app.store.members.subscriber("op@example.org")
    assert pending is not None and pending.status == "pending"
    assert (pending.keywords, pending.send_at) == (op.keywords, op.send_at)
    text = app.mails_to("op@example.org")[-1].get_body(("plain",)).get_content()
    assert "Keywords: diffusion" in text
    await app.confirm("op@example.org")
    app.store.members.sync_config_subscribers(app.ctx.config.subscribers)  # the next pass
    back = app.store.members.subscriber("op@example.org")
    assert back is not None and back.status == "active" and back.keywords == op.keywords


async def test_pause_and_resume(app: App) -> None:
    ada = await active(app, "ada@example.org")
    page = await app.client.get(app.link("manage", ada))
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    form = {"csrf": csrf.group(1), "send_at": "08:00", "timezone": "UTC"}
    await app.client.post(app.link("manage", ada), data={**form, "action": "pause"})
    paused = app.store.members.subscriber("ada@example.org")
    assert paused is not None and paused.status == "paused"
    await app.client.post(app.link("manage", ada), data={**form, "action": "resume"})
    resumed = app.store.members.subscriber("ada@example.org")
    assert resumed is not None and resumed.status == "active"


async def test_an_unsubscribed_reader_can_resume_from_the_manage_page(app: App) -> None:
    ada = await active(app, "ada@example.org")
    left = await app.client.post(app.link("unsubscribe", ada))
    assert "Resume your subscription" in left.text and app.link("manage", ada) in left.text
    resumed = await app.act(ada, "resume")
    assert resumed.status_code == 200 and "Resumed." in resumed.text
    back = app.store.members.subscriber("ada@example.org")
    assert back is not None and back.status == "active" and back.next_send_at is None


@pytest.mark.parametrize("app", [OPERATOR_SUBSCRIBER], indirect=True)
async def test_one_the_operator_took_out_of_the_config_is_offered_no_resume(app: App) -> None:
    op = app.store.members.subscriber("op@example.org")
    assert op is not None and op.id is not None
    app.store.members.sync_config_subscribers([])  # the operator removed them
    page = await app.client.get(app.link("manage", op))
    assert page.status_code == 200 and 'value="resume"' not in page.text


def record_digest(app: App, sub: Subscriber) -> None:
    """Record a digest of DAY's first paper for ``sub``, as a run does before sending it."""
    assert sub.id is not None
    key = new_delivery_id()
    plan = PlannedDelivery(sub.id, DAY, ("arxiv:2611.00001",), 1, key, f"<{key}@test>")
    assert app.store.outbox.record_pending([plan], datetime(2026, 11, 16, 7, tzinfo=UTC))


async def test_delete_my_data_asks_first_then_removes_the_subscriber_and_history(
    app: App,
) -> None:
    ada = await active(app, "ada@example.org")
    bo = await active(app, "bo@example.org")
    for sub in (ada, bo):
        record_digest(app, sub)
    asked = await app.act(ada, "delete")
    assert asked.status_code == 200 and "cannot be undone" in asked.text
    assert app.store.members.subscriber("ada@example.org") == ada  # nothing yet
    done = await app.act(ada, "delete-confirmed", asked.text)
    assert done.status_code == 200 and "Your data is deleted" in done.text
    assert app.store.members.subscriber("ada@example.org") is None
    assert ada.id is not None and bo.id is not None
    assert app.store.outbox.history(ada.id) == []
    assert len(app.store.outbox.history(bo.id)) == 1  # only hers
    gone = await app.client.get(app.link("manage", ada))
    assert gone.status_code == 400  # her links name nobody now
    assert (await app.subscribe("ada@example.org")).status_code == 200  # she may come back


async def test_delete_my_data_needs_the_csrf_token(app: App) -> None:
    ada = await active(app, "ada@example.org")
    app.client.cookies.clear()
    refused = await app.client.post(app.link("manage", ada), data={"action": "delete-confirmed"})
    assert refused.status_code == 400 and app.store.members.subscriber("ada@example.org") == ada


@pytest.mark.parametrize("app", [OPERATOR_SUBSCRIBER], indirect=True)
async def test_delete_my_data_of_a_config_subscriber_unsubscribes_and_forgets_history(
    app: App,
) -> None:
    """The config lists the address: a deleted row would come back, active, at the next
    pass; so the row stays, unsubscribed, and the history goes."""
    op = app.store.members.subscriber("op@example.org")
    assert op is not None and op.id is not None
    record_digest(app, op)
    asked = await app.act(op, "delete")
    assert "stays in this site's configuration" in asked.text
    done = await app.act(op, "delete-confirmed", asked.text)
    assert done.status_code == 200 and "ask its operator" in done.text
    app.store.members.sync_config_subscribers(app.ctx.config.subscribers)  # the next pass
    after = app.store.members.subscriber("op@example.org")
    assert after is not None and after.status == "unsubscribed"
    assert app.store.outbox.history(op.id) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Europe/Berln", "did you mean Europe/Berlin?"),
        ("timezone", "berlin", "did you mean Europe/Berlin?"),
        ("keywords", "diffusion AND", "at character"),
        ("name", "Ada\x1b", "U+001B"),
        ("send_at", "25:00", "HH:MM"),
    ],
)
async def test_manage_form_errors_are_tied_to_their_inputs(
    app: App, field: str, value: str, message: str
) -> None:
    ada = await active(app, "ada@example.org")
    page = await app.save(ada, **{field: value})
    assert page.status_code == 400
    tag = re.search(rf'<(?:input|textarea)[^>]* id="{field}"[^>]*>', page.text)
    assert tag and 'aria-invalid="true"' in tag.group(0), page.text
    assert f'aria-describedby="{field}-error"' in tag.group(0)
    error = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page.text)
    assert error and message in error.group(1)
    assert page.text.count('aria-invalid="true"') == 1


async def test_the_manage_page_has_the_live_preview(app: App) -> None:
    ada = await active(app, "ada@example.org")
    page = await app.client.get(app.link("manage", ada))
    assert '<div id="preview"' in page.text and 'src="/static/subscribe.js"' in page.text


async def test_a_manage_post_without_csrf_changes_nothing(app: App) -> None:
    ada = await active(app, "ada@example.org")
    app.client.cookies.clear()
    page = await app.client.post(
        app.link("manage", ada), data={"keywords": "x", "send_at": "08:00", "timezone": "UTC"}
    )
    assert page.status_code == 400
    assert app.store.members.subscriber("ada@example.org") == ada


async def test_one_click_unsubscribe_works_without_cookies(app: App) -> None:
    ada = await active(app, "ada@example.org")
    bo = await active(app, "bo@example.org")
    url = app.link("unsubscribe", ada)
    page = await app.client.get(url)
    assert page.status_code == 200
    assert page.text.count("<button") == 1
    app.client.cookies.clear()
    for _ in range(2):  # RFC 8058: the mail client POSTs; again is harmless
        done = await app.client.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200
        assert "unsubscribed" in done.text
    gone = app.store.members.subscriber("ada@example.org")
    assert gone is not None and gone.status == "unsubscribed"
    assert app.store.members.subscriber("bo@example.org") == bo
    assert app.service.feeds_dirty
    assert (await app.client.get(f"/feeds/{ada.token}.atom")).status_code == 404


async def test_tokens_act_only_for_their_purpose(app: App) -> None:
    ada = await active(app, "ada@example.org")
    wrong = app.link("manage", ada).replace("/manage", "/unsubscribe")
    page = await app.client.post(wrong)
    assert page.status_code == 400
    forged = f"/unsubscribe?token={tokens.sign(b'guessed', 'unsubscribe', str(ada.id))}"
    assert (await app.client.post(forged)).status_code == 400
    assert (await app.client.get("/manage?token=1.2")).status_code == 400
    still = app.store.members.subscriber("ada@example.org")
    assert still is not None and still.status == "active"


async def test_links_signed_with_the_stored_secret_still_work(app: App) -> None:
    """Emails sent by `digest run` before DIGEST_SECRET was set carry such links."""
    ada = await active(app, "ada@example.org")
    legacy = tokens.sign(app.store.run_log.secret(), "unsubscribe", str(ada.id))
    assert (await app.client.post(f"/unsubscribe?token={legacy}")).status_code == 200


# -- feeds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/feed.xml", "/feed.atom"])
async def test_feeds_answer_conditional_requests(app: App, path: str) -> None:
    first = await app.client.get(path)
    assert first.status_code == 200
    assert "xml" in first.headers["content-type"]
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert (await app.client.get(path, headers={"If-None-Match": etag})).status_code == 304
    assert (
        await app.client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
    ).status_code == 304
    assert (await app.client.get(path, headers={"If-Modified-Since": modified})).status_code == 304
    changed = await app.client.get(path, headers={"If-None-Match": '"stale"'})
    assert changed.status_code == 200 and changed.content == first.content
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (await app.client.get(path, headers={"If-Modified-Since": old})).status_code == 200
    # RSS readers take titles as HTML: the text is escaped once more there (shown as text).
    escaped = b"&amp;lt;script&amp;gt;" if path.endswith(".xml") else b"&lt;script&gt;"
    assert escaped in first.content
    assert b"<script>alert" not in first.content.replace(b"<![CDATA[", b"")


async def test_private_feeds_are_served_by_token_and_unknown_ones_are_404(app: App) -> None:
    ada = await active(app, "ada@example.org")
    write_feeds(app.ctx)
    feed = await app.client.get(f"/feeds/{ada.token}.atom")
    assert feed.status_code == 200 and feed.headers["etag"]
    assert "private" in feed.headers["cache-control"]
    again = await app.client.get(
        f"/feeds/{ada.token}.atom", headers={"If-None-Match": feed.headers["etag"]}
    )
    assert again.status_code == 304
    for path in (
        "/feeds/" + "A" * 32 + ".atom",
        "/feeds/short.xml",
        f"/feeds/{ada.token}.html",
        "/feeds/..%2F..%2Fconfig.toml",
        "/feeds/%2e%2e%2f%2e%2e%2fconfig.xml",
        "/feed.html",
    ):
        assert (await app.client.get(path)).status_code == 404, path


async def test_feeds_name_the_stylesheet_that_a_browser_shows_them_with(app: App) -> None:
    """Same origin: each feed's <?xml-stylesheet?> names /feed.xsl, served by us (a browser
    refuses a stylesheet from another origin); also written beside the feed files, for a
    web server serving feeds.dir."""
    ada = await active(app, "ada@example.org")
    for path in ("/feed.xml", "/feed.atom", f"/feeds/{ada.token}.xml", f"/feeds/{ada.token}.atom"):
        feed = await app.client.get(path)
        assert feed.status_code == 200
        assert (
            feed.content.split(b"\n")[1] == b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>'
        )
        assert not feedparser.parse(feed.content).bozo
    # A browser gets the page the stylesheet makes, made by the server (Chromium shows
    # application/rss+xml and atom+xml as raw text, and warns over XSLT pages); readers, XML.
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    reader = "application/atom+xml,application/rss+xml,application/xml;q=0.9,*/*;q=0.1"
    for path, media in (("/feed.xml", "rss"), (f"/feeds/{ada.token}.atom", "atom")):
        shown = await app.client.get(path, headers={"Accept": browser})
        assert shown.headers["content-type"] == "text/html; charset=utf-8"
        assert shown.headers["vary"] == "Accept"
        assert "follow it in a feed reader" in shown.text
        assert f'<code class="address">http://testserver{path}</code>' in shown.text
        assert "frame-ancestors 'none'" in shown.headers["content-security-policy"]
        again = {"Accept": browser, "If-None-Match": shown.headers["etag"]}
        assert (await app.client.get(path, headers=again)).status_code == 304
        read = await app.client.get(path, headers={"Accept": reader})
        assert read.headers["content-type"] == f"application/{media}+xml; charset=utf-8"
        assert read.headers["etag"] != shown.headers["etag"]
        plain = await app.client.get(path, headers={"Accept": "*/*"})
        assert plain.headers["content-type"] == f"application/{media}+xml; charset=utf-8"
    xsl = await app.client.get("/feed.xsl")
    assert xsl.status_code == 200 and xsl.headers["content-type"] == "text/xsl; charset=utf-8"
    assert b"<xsl:stylesheet" in xsl.content
    assert (app.ctx.config.feeds.dir / "feed.xsl").read_bytes() == xsl.content
    assert (await app.client.get("/feeds/feed.xsl")).status_code == 404


async def test_a_private_feed_exists_once_confirmed_and_follows_a_change_of_queries(
    app: App,
) -> None:
    """No 503 "being prepared" after confirming, no old queries until the next papers: the
    feed file is written on confirmation, and a feed whose queries changed (manage page,
    CLI) is written again when it is asked for."""
    ada = await active(app, "ada@example.org")  # keywords "diffusion"; no pass ran since
    link = app.ctx.config.feeds.dir / "feeds" / f"{ada.token}.atom"
    assert link.exists()  # for a web server serving feeds.dir too
    feed = await app.client.get(f"/feeds/{ada.token}.atom")
    assert feed.status_code == 200
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo and len(parsed.entries) == 2  # the two "diffusion" papers
    assert (await app.save(ada, keywords="robots")).status_code == 200
    on_disk = feedparser.parse(link.read_bytes()).entries  # before anyone asks for it
    assert [e.title for e in on_disk] == ["A survey of robots"]
    for kind in ("atom", "xml"):
        again = await app.client.get(f"/feeds/{ada.token}.{kind}")
        assert again.status_code == 200 and again.headers["etag"] != feed.headers["etag"]
        titles = [e.title for e in feedparser.parse(again.content).entries]
        assert titles == ["A survey of robots"], kind


def test_if_none_match_wins_over_if_modified_since() -> None:
    class Req:
        def __init__(self, **headers: str) -> None:
            self.headers = {k.replace("_", "-"): v for k, v in headers.items()}

    when = datetime(2026, 11, 16, tzinfo=UTC)
    ims = "Tue, 17 Nov 2026 00:00:00 GMT"
    assert not_modified(Req(if_modified_since=ims), '"a"', when)  # type: ignore[arg-type]
    assert not not_modified(Req(if_none_match='"b"', if_modified_since=ims), '"a"', when)  # type: ignore[arg-type]
    assert not_modified(Req(if_none_match="*"), '"a"', when)  # type: ignore[arg-type]
    assert not not_modified(Req(if_modified_since="garbage"), '"a"', when)  # type: ignore[arg-type]


# -- archive, preview, health ---------------------------------------------------------------


async def test_the_archive_shows_a_day_with_everything_escaped(app: App) -> None:
    index = await app.client.get("/archive/")
    assert index.status_code == 200 and "/archive/2026-11-16" in index.text
    day = await app.client.get("/archive/2026-11-16")
    assert day.status_code == 200
    assert "Diffusion models for proteins" in day.text
    assert "<script>alert" not in day.text and "&lt;script&gt;" in day.text
    assert "\u202e" not in day.text
    assert 'href="javascript:' not in day.text
    for bad in ("/archive/2026-13-40", "/archive/yesterday", "/archive/2026-11-17"):
        page = await app.client.get(bad)
        assert page.status_code == 404, bad
        assert "Traceback" not in page.text


async def test_the_preview_shows_what_a_query_would_have_brought(app: App) -> None:
    found = (await app.client.get("/preview", params={"keywords": "diffusion"})).json()
    [day] = found["days"]
    assert (day["date"], day["total"], day["count"]) == ("2026-11-16", 3, 2)
    assert {"diffusion"} <= set(day["papers"][0]["terms"])
    none = (
        await app.client.get("/preview", params={"keywords": "diffusion", "exclude": "proteins"})
    ).json()
    assert none["days"][0]["count"] == 1
    bad = await app.client.get("/preview", params={"keywords": "a AND"})
    assert bad.status_code == 400 and "at character" in bad.json()["error"]
    escape = await app.client.get("/preview", params={"keywords": "a\nb\x1b[2J"})
    assert escape.status_code == 400 and "(U+001B)" in escape.json()["error"]
    assert app.store.members.subscribers() == []


async def test_healthz_is_503_while_the_scheduler_is_not_running(app: App) -> None:
    down = await app.client.get("/healthz")
    assert down.status_code == 503 and down.json()["scheduler"] == "stopped"
    app.service.running = True
    up = await app.client.get("/healthz")
    assert up.status_code == 200
    assert up.json()["status"] == "ok"


async def test_unknown_pages_and_methods_get_pages_not_tracebacks(app: App) -> None:
    assert (await app.client.get("/nope")).status_code == 404
    assert (await app.client.put("/subscribe")).status_code == 405
    assert (await app.client.get("/subscribe")).status_code == 405
    # RFC 9110 15.5.6: a 405 says what the resource takes (a prefetcher's OPTIONS too)
    refused = await app.client.options("/unsubscribe?token=x")
    assert refused.status_code == 405 and set(refused.headers["allow"].split(", ")) == {
        "GET",
        "HEAD",
        "POST",
    }
    assert (await app.client.get("/subscribe")).headers["allow"] == "POST"
