"""Building the RSS 2.0 and Atom feeds of listed papers, as bytes, with feedgen.

Pure: the same function makes the public feeds and each subscriber's private ones (a
subset of papers). Text is cleaned of what XML forbids, so one bad abstract cannot make a
whole feed unreadable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, tzinfo
from urllib.parse import quote, urlsplit

from feedgen.feed import FeedGenerator

from digest.models import Paper

GENERATOR = "paper-digest"

# XML 1.0 §2.2 Char, less the C1 controls and bidi overrides: whatever remains is dropped.
_NOT_XML = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\u2029\u202f-\u2065\u206a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_SPACES = re.compile(r"\s+")
_SAFE_URL = re.compile(r"https?://[!#-;=?-~]+", re.IGNORECASE)


def xml_text(text: str) -> str:
    """``text`` on one line with every character XML 1.0 forbids (controls, lone
    surrogates, U+FFFE/U+FFFF) and every bidi override removed."""
    return _SPACES.sub(" ", _NOT_XML.sub(" ", text)).strip()


def _url(url: str | None) -> str | None:
    if url and _SAFE_URL.fullmatch(url.strip()):
        return url.strip()
    return None


def paper_id(paper: Paper, link: str) -> str:
    """A paper's stable guid/id: its arXiv abs URL, else a ``tag:`` URI (RFC 4151) from its
    key in the authority of the feed's ``link`` (``tag:example.org,2024:paper/title:…``)."""
    if paper.arxiv_id and (url := _url(paper.abs_url)):
        return url
    host = urlsplit(link).hostname or "localhost"
    return f"tag:{host},2024:paper/{quote(paper.key, safe=':-._~')}"


def newest_first(entries: Iterable[tuple[date, Paper]], link: str) -> list[tuple[date, Paper]]:
    """``entries`` by listing date, newest first (stable within a date), each paper once:
    at its newest date, with the data seen there (the latest upvotes and text)."""
    seen: set[str] = set()
    unique: list[tuple[date, Paper]] = []
    for day, paper in sorted(entries, key=lambda e: e[0], reverse=True):
        guid = paper_id(paper, link)
        if guid not in seen:
            seen.add(guid)
            unique.append((day, paper))
    return unique


def build_feeds(
    entries: Iterable[tuple[date, Paper]],
    *,
    title: str,
    link: str,
    rss_url: str,
    atom_url: str,
    description: str,
    updated: datetime,
    tz: tzinfo = UTC,
) -> tuple[bytes, bytes]:
    """The RSS 2.0 and the Atom feed of ``entries`` (listing date, paper): ``(rss, atom)``.

    Items are newest listing date first and each paper appears once (see
    :func:`newest_first`); each has its guid/id (:func:`paper_id`), title, link, authors
    (Atom ``<author><name>``, RSS ``<dc:creator>`` since RSS ``<author>`` must be an email
    address), the listing date at midnight in ``tz``, and the abstract. ``link`` is the
    site, ``rss_url``/``atom_url`` where the feeds are served; ``updated`` must be
    timezone-aware. Output is deterministic for the same input.
    """
    if updated.tzinfo is None or updated.utcoffset() is None:
        raise ValueError("updated must be timezone-aware")
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.id(atom_url)
    fg.title(xml_text(title) or "Papers")
    fg.subtitle(xml_text(description) or xml_text(title) or "Papers")
    # feedgen gives RSS the last link added: the site, not the feed itself.
    fg.link(href=atom_url, rel="self")
    fg.link(href=link, rel="alternate")
    fg.language("en")
    fg.generator(GENERATOR)
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for day, paper in newest_first(entries, link):
        when = datetime.combine(day, time(0), tzinfo=tz)
        entry = fg.add_entry(order="append")
        guid = paper_id(paper, link)
        entry.id(guid)
        entry.guid(guid, permalink=guid.startswith("http"))
        entry.title(xml_text(paper.title) or paper.key)
        entry.link(href=_url(paper.url) or link, rel="alternate")
        authors = [name for name in (xml_text(a) for a in paper.authors) if name]
        if authors:
            entry.author([{"name": name} for name in authors])
            entry.dc.dc_creator(", ".join(authors))
        entry.summary(xml_text(paper.abstract) or xml_text(paper.title) or paper.key)
        entry.published(when)
        entry.updated(when)
    atom = fg.atom_str(pretty=True)
    fg.link(href=rss_url, rel="self", replace=True)
    fg.link(href=link, rel="alternate")
    rss = fg.rss_str(pretty=True)
    return bytes(rss), bytes(atom)
