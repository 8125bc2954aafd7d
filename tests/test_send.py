"""``digest send``: a one-off digest says it is one, and offers an unsubscribe link (and a
``List-Unsubscribe`` header) only to an address that subscribes, where the link works."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest.run import send_once
from tests.support.site import digest, write_site
from tests.test_web import DAY, SECRET, App, active, app

__all__ = ["app"]  # the web fixture, imported for this module's tests


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path)


def read(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def bodies(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def send_to(site: Path, address: str) -> EmailMessage:
    out = site / "one.eml"
    result = digest(
        site, "send", "--to", address, "--keywords", "diffusion", "--date", "2026-11-16",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return read(out)


def test_a_one_off_to_someone_not_subscribed_says_so_and_offers_no_unsubscribe(
    site: Path,
) -> None:
    message = send_to(site, "grace@example.org")
    assert "List-Unsubscribe" not in message and "List-Unsubscribe-Post" not in message
    text, html = bodies(message)
    for body in (text, html):
        assert "because you subscribed" not in body
        assert "one-off digest of Trending papers, sent to grace@example.org by hand" in body
        assert "It is not a subscription" in body
        assert "/unsubscribe" not in body and "Unsubscribe" not in body
        assert "/manage" not in body
        assert "https://digest.example.org/" in body  # where to subscribe
    assert "To get a digest of your own every day, subscribe: https://digest.example.org/" in text
    assert "The feed of every paper: https://digest.example.org/feed.atom" in text


def test_a_one_off_to_someone_who_left_is_a_one_off_to_a_stranger(site: Path) -> None:
    assert digest(site, "run", "--date", "2026-11-16").exit_code == 0  # ada is in the database
    assert digest(site, "subscribers", "remove", "ada@example.org").exit_code == 0
    message = send_to(site, "ada@example.org")
    assert "List-Unsubscribe" not in message
    assert "/unsubscribe" not in bodies(message)[0]


def test_a_one_off_to_a_subscriber_keeps_their_own_links(site: Path) -> None:
    assert digest(site, "run", "--date", "2026-11-16").exit_code == 0  # ada is in the database
    message = send_to(site, "ada@example.org")
    assert "https://digest.example.org/unsubscribe?token=" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = bodies(message)
    for body in (text, html):
        assert "one-off digest of Trending papers, sent to ada@example.org by hand" in body
        assert "Your own subscription to Trending papers goes on as it was" in body
        assert "/unsubscribe?token=" in body and "/manage?token=" in body
    assert "with these keywords: diffusion." in text  # the one-off's, not her "medical" exclude


async def test_the_unsubscribe_link_of_a_one_off_to_a_subscriber_works(
    app: App, tmp_path: Path
) -> None:
    """Their own link, signed for their id: it opens the unsubscribe page and works."""
    ada = await active(app, "ada@example.org")
    ctx = replace(app.ctx, secret=SECRET)
    out = tmp_path / "one.eml"
    assert await send_once(ctx, DAY, "ada@example.org", ["diffusion"], [], out=out) == 2
    text, _ = bodies(read(out))
    found = re.search(r"http://testserver(/unsubscribe\?token=\S+)", text)
    assert found, text
    page = await app.client.get(found.group(1))
    assert page.status_code == 200 and "not valid" not in page.text
    done = await app.client.post(
        found.group(1),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "unsubscribed" in done.text
    gone = app.store.members.subscriber("ada@example.org")
    assert gone is not None and gone.id == ada.id and gone.status == "unsubscribed"


def test_a_send_of_an_empty_listing_says_so_and_fails(site: Path) -> None:
    # 2026-11-18 of the test site is an empty listing (a holiday): nothing could match.
    result = digest(site, "send", "--to", "grace@example.org", "--date", "2026-11-18")
    assert result.exit_code == 1, result.output
    assert "the listing for 2026-11-18 is empty: nothing to send" in result.stderr
    assert "no paper matches" not in result.output and "Traceback" not in result.output
    # A listing with papers none of which match is another thing: said, and exit 0.
    none = digest(site, "send", "--to", "grace@example.org", "--keywords", "zebra",
                  "--date", "2026-11-16")  # fmt: skip
    assert none.exit_code == 0, none.output
    assert "2026-11-16: no paper matches; nothing sent" in none.stdout
