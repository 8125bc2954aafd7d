"""Links that mail scanners, link checkers and prefetchers cannot trigger: every route of
the web app answers GET, HEAD and OPTIONS without changing anything; only an explicit POST
confirms or unsubscribes; a confirmation link confirms the request it was sent for, once.

The web app runs in-process (``tests/test_web.py``'s ``app``: a real SQLite file and a real
SMTP server); "changes nothing" means every row of every table is as it was, and no email
went out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer
from starlette.routing import Route

from digest.compose.feedback import feedback_token
from digest.models import Subscriber
from digest.serve.app import routes
from digest.store import Store, metadata
from tests.test_web import DAY, SECRET, App, app

__all__ = ["app"]  # the web fixture, imported for this module's tests

#: Bookkeeping that reading a page may write (rate-limit events): not a state change.
NOT_STATE = {"rate_events"}
PROBES = ("GET", "HEAD", "OPTIONS")


def reader(app: App, email: str = "ada@example.org") -> Subscriber:
    """An active subscriber (added as the CLI does: no confirmation involved)."""
    return app.store.members.add_subscriber(Subscriber(email=email, keywords=("diffusion",)))


def snapshot(app: App) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    with app.store.engine.connect() as conn:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(sa.select(table))), key=repr)
            for table in metadata.sorted_tables
            if table.name not in NOT_STATE
        }


async def site_with_links(app: App) -> dict[str, str]:
    """Subscribers in each state a link acts on, and a URL (with a working token) for each
    path of the routing table."""
    ada = reader(app)
    assert ada.id is not None
    ada_id = ada.id
    await app.subscribe("bo@example.org")
    return {
        "/": "/",
        "/subscribe": "/subscribe?email=eve%40example.org&keywords=x&send_at=08:00",
        "/confirm": app.confirm_url("bo@example.org"),
        "/manage": app.link("manage", ada) + "&action=pause",
        "/unsubscribe": app.link("unsubscribe", ada) + "&List-Unsubscribe=One-Click",
        "/more": f"/more?token={feedback_token(SECRET, ada_id, '2611.00001')}&action=record",
        "/less": f"/less?token={feedback_token(SECRET, ada_id, '2611.00002')}&action=record",
        "/feed.xsl": "/feed.xsl",
        "/feed.{kind:str}": "/feed.atom",
        "/feeds/{token:str}.{kind:str}": f"/feeds/{ada.token}.atom",
        "/archive/": "/archive/",
        "/archive": "/archive",
        "/archive/search": "/archive/search?q=diffusion",
        "/archive/{day:str}": f"/archive/{DAY.isoformat()}",
        "/preview": "/preview?keywords=diffusion",
        "/static/subscribe.js": "/static/subscribe.js",
        "/healthz": "/healthz",
        # The operator's pages; without DIGEST_ADMIN_PASSWORD here: 404 (test_admin has the
        # authorised GETs, which read and change nothing either).
        "/admin": "/admin",
        "/metrics": "/metrics",
    }


def the_routes(app: App) -> list[Route]:
    """The routing table of ``digest.serve.app``, as the running app has it."""
    table = [r for r in app.asgi.routes if isinstance(r, Route)]
    assert len(table) == len(app.asgi.routes) == len(routes(app.asgi.state.web))
    return table


async def test_no_route_changes_anything_on_get_head_or_options(app: App) -> None:
    urls = await site_with_links(app)
    table = the_routes(app)
    assert {r.path for r in table} == set(urls), "a new route needs a URL here"
    before, mails = snapshot(app), len(app.server.messages)
    for route in table:
        for method in PROBES:
            response = await app.client.request(method, urls[route.path])
            assert response.status_code != 500, (method, route.path, response.text)
            assert snapshot(app) == before, f"{method} {route.path} changed the database"
            assert len(app.server.messages) == mails, f"{method} {route.path} sent an email"
    bo = app.store.members.subscriber("bo@example.org")
    ada = app.store.members.subscriber("ada@example.org")
    assert bo is not None and bo.status == "pending"
    assert ada is not None and ada.status == "active"
    assert {r.path for r in table if r.methods and "POST" in r.methods} == {
        "/subscribe",
        "/confirm",
        "/manage",
        "/unsubscribe",
        "/more",
        "/less",
    }


async def test_a_head_on_an_unsubscribe_link_unsubscribes_nobody(app: App) -> None:
    """``curl -I`` on the link, as link checkers and mail security gateways do."""
    ada = reader(app)
    url = app.link("unsubscribe", ada)
    for method in PROBES:
        response = await app.client.request(method, url)
        assert response.status_code in (200, 405), (method, response.status_code)
    still = app.store.members.subscriber("ada@example.org")
    assert still is not None and still.status == "active"
    one_click = await app.client.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    gone = app.store.members.subscriber("ada@example.org")
    assert gone is not None and gone.status == "unsubscribed"


async def test_a_confirmation_link_shows_one_button_and_only_its_post_confirms(app: App) -> None:
    await app.subscribe("ada@example.org", keywords="diffusion", exclude="survey")
    url = app.confirm_url("ada@example.org")
    for method in ("GET", "HEAD", "GET"):  # a scanner, then a prefetcher, then the reader
        response = await app.client.request(method, url)
        assert response.status_code == 200
    page = await app.client.get(url)
    assert page.text.count("<button") == 1 and ">Confirm</button>" in page.text
    assert re.search(r'<form[^>]* method="post" action="/confirm\?token=', page.text)
    assert "diffusion" in page.text and "survey" in page.text
    pending = app.store.members.subscriber("ada@example.org")
    assert pending is not None and pending.status == "pending"
    done = await app.client.post(url)
    assert done.status_code == 200 and "subscribed" in done.text
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None and sub.status == "active"


async def status_of(app: App, email: str) -> tuple[str, tuple[str, ...]]:
    sub = app.store.members.subscriber(email)
    assert sub is not None
    return sub.status, sub.keywords


async def test_a_link_confirms_its_own_request_once_and_never_a_newer_one(app: App) -> None:
    await app.subscribe("ada@example.org", keywords="diffusion")
    first = app.confirm_url("ada@example.org")
    await app.subscribe("ada@example.org", keywords="robots")  # a newer request
    second = app.confirm_url("ada@example.org")
    for method in ("GET", "POST"):
        stale = await app.client.request(method, first)
        assert stale.status_code == 400 and "can no longer be used" in stale.text
    assert await status_of(app, "ada@example.org") == ("pending", ("robots",))
    assert (await app.client.post(second)).status_code == 200
    assert await status_of(app, "ada@example.org") == ("active", ("robots",))
    again = await app.client.post(second)  # once: a second press changes nothing
    assert again.status_code == 200 and "Already confirmed" in again.text

    # Unsubscribed, then a stranger asks for other queries: no old link reactivates her.
    ada = app.store.members.subscriber("ada@example.org")
    assert ada is not None
    await app.client.post(app.link("unsubscribe", ada))
    for link in (first, second):
        assert (await app.client.post(link)).status_code == 400
    assert await status_of(app, "ada@example.org") == ("unsubscribed", ("robots",))
    await app.subscribe("ada@example.org", keywords="stranger's query")
    for link in (first, second):
        refused = await app.client.post(link)
        assert refused.status_code == 400 and "can no longer be used" in refused.text
    assert await status_of(app, "ada@example.org") == ("pending", ("stranger's query",))


async def test_links_sent_before_nonces_existed_confirm_their_request_once(app: App) -> None:
    """A pending row from before revision 0002 has no nonce; its link carries none."""
    await app.subscribe("ada@example.org")
    with app.store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE subscribers SET confirm_nonce = NULL")
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None
    old = URLSafeTimedSerializer(SECRET, salt="digest-confirm").dumps([sub.id, sub.email])
    url = f"/confirm?token={old}"
    assert (await app.client.get(url)).status_code == 200
    assert (await app.client.post(url)).status_code == 200
    assert await status_of(app, "ada@example.org") == ("active", ("diffusion",))
    await app.client.post(app.link("unsubscribe", sub))
    await app.subscribe("ada@example.org")  # a new request: it has a nonce
    assert (await app.client.post(url)).status_code == 400
    assert await status_of(app, "ada@example.org") == ("pending", ("diffusion",))


async def test_a_confirmation_post_needs_no_cookie(app: App) -> None:
    """The mailed token is the authority (as for RFC 8058 one-click): no CSRF cookie."""
    await app.subscribe("ada@example.org")
    url = app.confirm_url("ada@example.org")
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as fresh:
        assert (await fresh.post(url)).status_code == 200
    assert await status_of(app, "ada@example.org") == ("active", ("diffusion",))


def test_the_store_confirms_a_request_by_its_nonce_once(db_url: str) -> None:
    """The same rules on SQLite and PostgreSQL, through ``store.members``."""
    when = datetime(2026, 11, 16, 8, tzinfo=UTC)
    with Store(db_url) as store:
        members = store.members
        first = members.request_subscription(Subscriber("ada@example.org", keywords=("a",)))
        second = members.request_subscription(Subscriber("ada@example.org", keywords=("b",)))
        sub_id = second.subscriber.id
        assert sub_id is not None and first.nonce and second.nonce
        assert (first.before, second.before, first.nonce != second.nonce) == (
            "new",
            "pending",
            True,
        )
        assert members.pending_request(sub_id, first.nonce) is None
        assert members.confirm(sub_id, "ada@example.org", when, nonce=first.nonce) is None
        assert members.confirm(sub_id, "ada@example.org", when, nonce=None) is None
        assert members.confirm(sub_id, "bo@example.org", when, nonce=second.nonce) is None
        shown = members.pending_request(sub_id, second.nonce)
        assert shown is not None and shown.keywords == ("b",)
        done = members.confirm(sub_id, "ada@example.org", when, nonce=second.nonce)
        assert done is not None and done.status == "active"
        assert members.confirm(sub_id, "ada@example.org", when, nonce=second.nonce) is None
        again = members.request_subscription(Subscriber("ada@example.org", keywords=("c",)))
        assert (again.before, again.nonce, again.subscriber.keywords) == ("active", None, ("b",))
        assert not members.managed_by_config(sub_id)

        lost = members.request_subscription(Subscriber("bo@example.org"))
        assert lost.nonce is not None and lost.subscriber.id is not None
        assert not members.withdraw_request(lost.subscriber.id, "another request")
        assert members.withdraw_request(lost.subscriber.id, lost.nonce)
        assert members.subscriber("bo@example.org") is None
