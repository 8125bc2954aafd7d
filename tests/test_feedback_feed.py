"""The private feed's "more like this" and "less like this" links (issue 17): a private feed
file is shared by every subscriber of the same queries, so its entries hold a placeholder
token naming only the paper, and ``digest serve`` serves each reader the feed with their
own signed links (their own ETag too); the public feed has no such links; a link from a
feed file served as it is (a web server serving feeds.dir) gets a page saying where it
works.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import feedparser

from digest.compose.feedback import FEED_MARK, personalise, read_feedback_token
from digest.compose.feeds import FeedMeta, FeedSet
from digest.compose.templates import load_feed_entry
from digest.models import Paper
from tests.test_feedback import csrf_of, likes
from tests.test_web import SECRET, App, active, app

__all__ = ["app"]  # the web fixture of tests/test_web.py

LINK = re.compile(r"https?://[^\"'&<>\s]+/(more|less)\?token=([A-Za-z0-9_.~-]+)")
SITE = "https://digest.example.org/"
PAPERS = [
    Paper(key="2611.00010", title="Sparse Diffusion", abstract="We sparsify.", authors=("Ada",)),
    Paper(key="title:0123456789abcdef01234567", title="Ünïcode <b>Titles</b>", abstract="x"),
    Paper(key="doi:10.1000/xyz", title="A DOI Paper", abstract="Text & more."),
]


def feed_set() -> FeedSet:
    content = load_feed_entry(None)
    return FeedSet(
        [(date(2026, 11, 16), p) for p in PAPERS],
        link=SITE,
        updated=datetime(2026, 11, 16, tzinfo=UTC),
        content=content,
    )


META = FeedMeta("Papers", SITE, None, None, "Papers")


def entry_links(feed: bytes) -> list[list[tuple[str, str]]]:
    """Each entry's feedback links (kind, token), as a reader sees its content."""
    parsed = feedparser.parse(feed)
    assert not parsed.bozo, parsed.bozo_exception
    return [LINK.findall(entry.content[0].value) for entry in parsed.entries]


def test_private_entries_carry_placeholders_and_public_ones_nothing() -> None:
    feeds = feed_set()
    public_rss, public_atom = feeds.build(META)
    assert b"/more?token=" not in public_rss + public_atom
    reasons = {p.key: ("diffusion",) for p in PAPERS}
    rss, atom = feeds.build(META, reasons=reasons)
    for feed in (rss, atom):
        links = entry_links(feed)
        assert [[kind for kind, _ in entry] for entry in links] == [["more", "less"]] * 3
        assert all(token.startswith(FEED_MARK) for entry in links for _, token in entry)


def test_personalise_gives_each_reader_their_own_token_for_each_paper() -> None:
    _, atom = feed_set().build(META, reasons={})
    ada, bo = personalise(atom, SECRET, 7), personalise(atom, SECRET, 8)
    assert FEED_MARK.encode() not in ada and ada != bo
    for reader, feed in ((7, ada), (8, bo)):
        read = [
            [read_feedback_token(SECRET, token) for _, token in entry]
            for entry in entry_links(feed)
        ]
        assert read == [[(reader, p.key)] * 2 for p in PAPERS]
    plain = b"<feed>no links</feed>"
    assert personalise(plain, SECRET, 7) is plain
    odd = b"<a href='/more?token=pdfb~!!~'>x</a> pdfb~A~"  # not base64 of a key: left
    assert personalise(odd, SECRET, 7).startswith(b"<a href='/more?token=pdfb~!!~'>")


async def test_digest_serve_serves_each_reader_their_own_links(app: App) -> None:
    ada = await active(app, "ada@example.org")  # both read "diffusion": one shared file
    bo = await active(app, "bo@example.org")
    assert ada.id is not None and bo.id is not None
    on_disk = (app.ctx.config.feeds.dir / "feeds" / f"{ada.token}.atom").read_bytes()
    assert FEED_MARK.encode() in on_disk  # the file itself names no reader
    served = {}
    for sub in (ada, bo):
        feed = await app.client.get(f"/feeds/{sub.token}.atom")
        assert feed.status_code == 200
        entries = entry_links(feed.content)
        assert len(entries) == 2 and all(len(links) == 2 for links in entries)
        for links in entries:
            assert {read_feedback_token(SECRET, token)[0] for _, token in links} == {sub.id}
        served[sub.id] = feed
        again = await app.client.get(
            f"/feeds/{sub.token}.atom", headers={"If-None-Match": feed.headers["etag"]}
        )
        assert again.status_code == 304
    assert served[ada.id].headers["etag"] != served[bo.id].headers["etag"]
    rss = await app.client.get(f"/feeds/{ada.token}.xml")
    assert FEED_MARK not in rss.text and "/more?token=" in rss.text
    public = await app.client.get("/feed.atom")
    assert public.status_code == 200 and "/more?token=" not in public.text

    # A reader follows "more like this" from their feed: one button, then recorded.
    kind, token = entry_links(served[bo.id].content)[0][0]
    assert kind == "more"
    key = read_feedback_token(SECRET, token)[1]
    page = await app.client.get(f"/more?token={token}")
    assert page.status_code == 200 and page.text.count("<button") == 1
    await app.client.post(f"/more?token={token}", data={"csrf": csrf_of(page)})
    assert likes(app, bo) == [(key, "like", "email")] and likes(app, ada) == []


async def test_a_placeholder_link_from_a_file_served_as_it_is_says_where_it_works(
    app: App,
) -> None:
    ada = await active(app, "ada@example.org")
    on_disk = (app.ctx.config.feeds.dir / "feeds" / f"{ada.token}.atom").read_bytes()
    _, token = entry_links(on_disk)[0][0]
    for response in (
        await app.client.get(f"/more?token={token}"),
        await app.client.post(f"/more?token={token}"),
    ):
        assert response.status_code == 400 and "Open this link from your feed" in response.text
    assert likes(app, ada) == []
