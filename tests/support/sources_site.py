"""A site reading three sources at once from real local servers: Hugging Face daily papers
(:class:`ListingServer`), arXiv's RSS feeds and query API (:class:`ArxivServer`) and a
journal's RSS feed (:class:`FeedServer`); and the fixture writers for them.

Usage::

    with ThreeSources(tmp_path, db_url) as site:
        site.hf.days["2026-11-18"] = [item(...)]
        site.arxiv.rss = arxiv_rss(date(2026, 11, 18), [rss_item(...)])
        site.publish_feed([FeedEntry(...)])
        report = await site.run(date(2026, 11, 18))
        site.received()   # {"ada@example.org": ["Title", ...], ...}

``run(day)`` is one daily run as ``digest run --date`` does it, at 07:00 UTC of ``day`` (the
time arXiv's listing of that date is out, the sources' clock too). The config names
``hf``, ``arxiv-ml`` (cs.LG and cs.CL, new, cross and replace) and ``neuro``; readers
are given as TOML (``subscribers``).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from digest.config import Config, load
from digest.run import RunReport, make_context, run
from digest.sources.arxiv import EASTERN
from digest.store import Store
from tests.support.arxiv_server import ArxivServer
from tests.support.feed_server import FeedServer
from tests.support.listing_server import ListingServer

ADMIN = "ops@example.org"
#: The feed's path on the feed server.
FEED_PATH = "/journal/latest.rss"


def rss_item(
    arxiv_id: str,
    title: str,
    abstract: str,
    categories: Sequence[str],
    *,
    announce: str = "new",
    version: int = 1,
    authors: str = "Ada Okafor, Bo Li",
    day: date,
) -> str:
    """One ``<item>`` of arXiv's RSS feed (shared/FORMATS.md §3); ``title`` and
    ``abstract`` are text (escaped here)."""
    cats = "".join(f"<category>{escape(c)}</category>" for c in categories)
    published = format_datetime(datetime.combine(day, time(0), EASTERN))
    return (
        f"<item><title>{escape(title)}</title>"
        f"<link>https://arxiv.org/abs/{arxiv_id}</link>"
        f"<description>arXiv:{arxiv_id}v{version} Announce Type: {announce} \n"
        f"Abstract: {escape(abstract)}</description>"
        f'<guid isPermaLink="false">oai:arXiv.org:{arxiv_id}v{version}</guid>{cats}'
        f"<pubDate>{published}</pubDate><arxiv:announce_type>{announce}</arxiv:announce_type>"
        "<dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>"
        f"<dc:creator>{escape(authors)}</dc:creator></item>"
    )


def arxiv_rss(day: date, items: Iterable[str]) -> bytes:
    """arXiv's RSS feed of cs.LG+cs.CL announced for ``day`` (no items: a weekend's)."""
    published = format_datetime(datetime.combine(day, time(0), EASTERN))
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:atom="http://www.w3.org/2005/Atom" version="2.0"><channel>'
        "<title>cs.LG+cs.CL updates on arXiv.org</title>"
        "<link>http://rss.arxiv.org/rss/cs.LG+cs.CL</link>"
        "<description>cs.LG+cs.CL updates on the arXiv.org e-print archive.</description>"
        f"<language>en-us</language><pubDate>{published}</pubDate>"
        "<skipDays><day>Sunday</day><day>Saturday</day></skipDays>"
        f"{''.join(items)}</channel></rss>"
    ).encode()


@dataclass(frozen=True)
class FeedEntry:
    """One entry of the journal's feed; ``title_xml`` is put in as is (markup escaped
    once, as feeds carry HTML in titles)."""

    title_xml: str
    link: str
    published: datetime
    summary: str = "A study."
    authors: str = "Zoë Łukasiewicz and Tomás Herrera"


def journal_rss(entries: Iterable[FeedEntry]) -> bytes:
    """The journal's RSS 2.0 feed, in UTF-8 but declaring windows-1252 (a wrong charset)."""
    items = "".join(
        f"<item><title>{e.title_xml}</title><link>{escape(e.link)}</link>"
        f"<description>{escape(e.summary)}</description>"
        f"<dc:creator>{escape(e.authors)}</dc:creator>"
        f"<pubDate>{format_datetime(e.published)}</pubDate>"
        f"<guid isPermaLink='false'>{escape(e.link)}</guid></item>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="windows-1252"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        "<title>Journal of Invented Neuroscience</title><link>https://jin.example.org/</link>"
        f"<description>Latest articles.</description>{items}</channel></rss>"
    ).encode()


class ThreeSources:
    """Three local servers and a site (config, database, outbox) reading them."""

    def __init__(self, folder: Path, db_url: str, subscribers: str, *, today: date) -> None:
        self.folder = folder
        self.db_url = db_url
        self.subscribers = subscribers
        self.hf = ListingServer(today=today)
        self.arxiv = ArxivServer()
        self.journal = FeedServer()
        self._seen: set[Path] = set()

    def __enter__(self) -> ThreeSources:
        self.hf.start()
        self.arxiv.start()
        self.journal.start()
        self.publish_feed([])
        self.config_path.write_text(self.config_text(), "utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        self.hf.stop()
        self.arxiv.stop()
        self.journal.stop()

    @property
    def config_path(self) -> Path:
        return self.folder / "config.toml"

    @property
    def outbox(self) -> Path:
        return self.folder / "outbox"

    def config_text(self) -> str:
        return f"""\
database = "{self.db_url}"
timezone = "UTC"
base_url = "https://digest.example.org"

[[sources]]
name = "hf"
kind = "huggingface"
url = "{self.hf.url}"
timeout = 5
retries = 1

[[sources]]
name = "arxiv-ml"
kind = "arxiv"
categories = ["cs.LG", "cs.CL"]
announce = ["new", "cross", "replace"]
rss_url = "{self.arxiv.rss_url}"
api_url = "{self.arxiv.api_url}"
timeout = 5
retries = 2

[[sources]]
name = "neuro"
kind = "feed"
url = "{self.journal.base}{FEED_PATH}"
timeout = 5
retries = 1

[mail]
from = "Paper Digest <digest@example.org>"
outbox_dir = "outbox"
admin = "{ADMIN}"
alert_after = 1

[feeds]
dir = "public"
title = "Papers"

{self.subscribers}
"""

    def publish_feed(self, entries: Iterable[FeedEntry]) -> None:
        """Serve the journal's feed with ``entries``, declared ISO-8859-1 by its header."""
        self.journal.serve(
            FEED_PATH,
            journal_rss(entries),
            content_type="application/rss+xml; charset=iso-8859-1",
        )

    def config(self) -> Config:
        return load(self.config_path)

    async def run(self, day: date, *, at: datetime | None = None) -> RunReport:
        """The daily run of ``day`` at ``at`` (default: 07:00 UTC that day)."""
        now = at or datetime.combine(day, time(7), UTC)
        config = self.config()
        with Store(config.database) as store:
            return await run(make_context(config, store, now=now), day)

    def messages(self) -> list[EmailMessage]:
        """The digests written to the outbox since the last call (alerts to the admin left
        out)."""
        found = []
        for path in sorted(self.outbox.glob("*.eml")):
            if path in self._seen:
                continue
            self._seen.add(path)
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if message["To"] != ADMIN:
                found.append(message)
        return found

    def received(self, titles: Iterable[str]) -> dict[str, list[str]]:
        """For each address, the ``titles`` held by the digests written since the last call,
        sorted (a title twice when two digests hold it), read from each digest's text part."""
        wanted = set(titles)
        out: dict[str, list[str]] = {}
        for message in self.messages():
            body = message.get_body(("plain",))
            assert body is not None
            lines = {line.strip().removeprefix("- ") for line in body.get_content().splitlines()}
            out.setdefault(str(message["To"]), []).extend(wanted & lines)
        return {address: sorted(titles) for address, titles in out.items()}
