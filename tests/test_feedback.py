"""``/more`` and ``/less``, the "more like this" and "less like this" links of a digest's
papers (issue 17): a GET or HEAD shows one button and changes nothing, its POST records a
like or dislike of origin ``email`` with an Undo, tokens cannot be forged or moved, and a
subscriber who deleted their data gets a page saying so.

The web app runs in-process (``tests/test_web.py``'s ``app``: a real SQLite file with a
stored listing, a real SMTP server).
"""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from digest.compose import tokens
from digest.compose.feedback import feedback_token, read_feedback_token
from digest.models import Subscriber
from tests.test_links import snapshot
from tests.test_web import HOSTILE, SECRET, App, active, app

__all__ = ["app"]  # the web fixture of tests/test_web.py

PROTEINS = "2611.00001"  # "Diffusion models for proteins", stored by the fixture


def url(kind: str, sub: Subscriber, key: str, secret: bytes = SECRET) -> str:
    assert sub.id is not None
    return f"/{kind}?token={feedback_token(secret, sub.id, key)}"


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def press(app: App, link: str, action: str = "record") -> httpx.Response:
    """Open ``link`` and press its button ``action`` (record or undo) on the page shown."""
    page = await app.client.get(link)
    assert page.status_code == 200, page.text
    return await app.client.post(link, data={"csrf": csrf_of(page), "action": action})


def likes(app: App, sub: Subscriber) -> list[tuple[str, str, str]]:
    assert sub.id is not None
    return [(like.key, like.kind, like.origin) for like in app.store.likes.of(sub.id)]


def test_a_token_names_one_subscriber_and_one_paper() -> None:
    token = feedback_token(SECRET, 7, "title:abc:def")  # a key may hold colons
    assert read_feedback_token(SECRET, token) == (7, "title:abc:def")
    for bad in (
        feedback_token(b"another secret", 7, PROTEINS),
        tokens.sign(SECRET, "unsubscribe", "7"),
        tokens.sign(SECRET, "feedback", "7"),  # signed, but no paper
        tokens.sign(SECRET, "feedback", "x:2611.00001"),
        token[:-2],
        "",
    ):
        with pytest.raises(tokens.BadToken):
            read_feedback_token(SECRET, bad)


async def test_get_and_head_show_one_button_and_change_nothing(app: App) -> None:
    ada = await active(app, "ada@example.org")
    before, mails = snapshot(app), len(app.server.messages)
    for kind in ("more", "less"):
        for method in ("GET", "HEAD", "OPTIONS", "GET"):  # scanner, checker, reader
            response = await app.client.request(method, url(kind, ada, PROTEINS))
            assert response.status_code in (200, 405), (method, response.status_code)
        page = await app.client.get(url(kind, ada, PROTEINS))
        assert page.text.count("<button") == 1
        assert "Diffusion models for proteins" in page.text
        assert re.search(rf'<form[^>]* method="post" action="/{kind}\?token=', page.text)
        assert ("More like this</button>" if kind == "more" else "Less like this</button>") in (
            page.text
        )
    assert snapshot(app) == before and len(app.server.messages) == mails
    assert likes(app, ada) == []


async def test_the_button_records_a_like_and_undo_removes_it(app: App) -> None:
    ada = await active(app, "ada@example.org")
    done = await press(app, url("more", ada, PROTEINS))
    assert done.status_code == 200
    assert "You will get more papers like “Diffusion models for proteins”" in done.text
    assert done.text.count("<button") == 1 and 'value="undo"' in done.text
    assert likes(app, ada) == [(PROTEINS, "like", "email")]
    again = await press(app, url("more", ada, PROTEINS))  # a second click: one like still
    assert "recorded already" in again.text and likes(app, ada) == [(PROTEINS, "like", "email")]
    undone = await app.client.post(
        url("more", ada, PROTEINS), data={"csrf": csrf_of(again), "action": "undo"}
    )
    assert undone.status_code == 200 and "is no longer liked" in undone.text
    assert likes(app, ada) == []


async def test_less_records_a_dislike_and_turns_a_like_into_one(app: App) -> None:
    ada = await active(app, "ada@example.org")
    bo = await active(app, "bo@example.org")
    await press(app, url("more", ada, PROTEINS))
    await press(app, url("less", bo, "2611.00002"))
    done = await press(app, url("less", ada, PROTEINS))
    assert "You will get fewer papers like" in done.text
    assert likes(app, ada) == [(PROTEINS, "dislike", "email")]
    assert likes(app, bo) == [("2611.00002", "dislike", "email")]  # each their own


async def test_a_paper_we_do_not_have_is_named_by_its_key_and_recorded(app: App) -> None:
    ada = await active(app, "ada@example.org")
    page = await app.client.get(url("more", ada, "2611.99999"))
    assert page.status_code == 200 and "“2611.99999”" in page.text
    await press(app, url("more", ada, "2611.99999"))
    assert likes(app, ada) == [("2611.99999", "like", "email")]


async def test_a_hostile_title_is_shown_as_text(app: App) -> None:
    ada = await active(app, "ada@example.org")
    page = await app.client.get(url("less", ada, "2611.00003"))
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "&lt;b&gt;Bold&lt;/b&gt;" in page.text and "Diffusion &amp;" in page.text
    assert "\u202e" not in page.text and "\u202e" in HOSTILE  # no bidi override shown


async def test_forged_and_moved_tokens_are_refused(app: App) -> None:
    ada = await active(app, "ada@example.org")
    bo = await active(app, "bo@example.org")
    assert ada.id is not None and bo.id is not None
    token = feedback_token(SECRET, ada.id, PROTEINS)
    signature = token.split(".")[1]

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    before = snapshot(app)
    for bad in (
        f"{b64(f'{bo.id}:{PROTEINS}')}.{signature}",  # moved to another subscriber
        f"{b64(f'{ada.id}:2611.00002')}.{signature}",  # moved to another paper
        feedback_token(b"guessed-secret-0123456789", ada.id, PROTEINS),
        tokens.sign(SECRET, "unsubscribe", str(ada.id)),
        tokens.sign(SECRET, "manage", str(ada.id)),
        token[:-3],
        "",
    ):
        for kind in ("more", "less"):
            link = f"/{kind}?token={bad}"
            for response in (await app.client.get(link), await app.client.post(link)):
                assert response.status_code == 400, (bad, response.status_code)
                assert "This link is not valid" in response.text
                assert "Traceback" not in response.text
    # and a feedback token is no unsubscribe or manage token
    for purpose in ("unsubscribe", "manage"):
        assert (await app.client.post(f"/{purpose}?token={token}")).status_code == 400
    assert snapshot(app) == before


async def test_a_post_without_the_page_s_csrf_field_records_nothing(app: App) -> None:
    ada = await active(app, "ada@example.org")
    link = url("more", ada, PROTEINS)
    await app.client.get(link)  # the cookie, but not the field
    refused = await app.client.post(link, data={"action": "record"})
    assert refused.status_code == 400 and "press the button again" in refused.text
    assert 'aria-describedby="feedback-error"' in refused.text
    assert refused.text.count("<button") == 1
    assert likes(app, ada) == []
    app.client.cookies.clear()  # the field, but no cookie (another browser)
    no_cookie = await app.client.post(link, data={"csrf": csrf_of(refused), "action": "record"})
    assert no_cookie.status_code == 400 and likes(app, ada) == []
    done = await app.client.post(link, data={"csrf": csrf_of(no_cookie), "action": "record"})
    assert done.status_code == 200 and likes(app, ada) == [(PROTEINS, "like", "email")]


async def test_a_subscriber_who_deleted_their_data_gets_a_page_saying_so(app: App) -> None:
    ada = await active(app, "ada@example.org")
    link = url("more", ada, PROTEINS)
    asked = await app.act(ada, "delete")
    await app.act(ada, "delete-confirmed", asked.text)
    assert app.store.members.subscriber("ada@example.org") is None
    before = snapshot(app)
    for response in (await app.client.get(link), await app.client.post(link)):
        assert response.status_code == 410
        assert "This subscription is gone" in response.text and "Traceback" not in response.text
    assert snapshot(app) == before


async def test_links_signed_with_the_stored_secret_still_work(app: App) -> None:
    """Emails sent by ``digest run`` before DIGEST_SECRET was set carry such links."""
    ada = await active(app, "ada@example.org")
    await press(app, url("less", ada, PROTEINS, app.store.run_log.secret()))
    assert likes(app, ada) == [(PROTEINS, "dislike", "email")]
