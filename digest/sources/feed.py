"""Any RSS 0.9x/1.0/2.0 or Atom feed, parsed with feedparser into dated papers.

Pure: bytes in, :class:`ParsedFeed` out (feedparser is given the bytes as a stream, so it
never opens a URL or a file). What an entry becomes:

- **title**: HTML reduced to one line of text (RSS titles are HTML in practice, escaped once
  or twice; an Atom ``type="text"`` title is text as it is);
- **abstract**: the longer of the summary and the content, as text with its paragraphs;
- **authors**: every author, ``dc:creator`` or ``<author>``; one string naming several
  (``"Ada Okafor, Bo Chen and Cy Diaz"``) is split, a single ``"Okafor, Ada"`` is not;
- **link**: the entry's page, resolved against the feed's URL; http(s) only;
- **identity**: the arXiv id of an ``arxiv.org/abs|pdf`` link or guid, the DOI of
  ``prism:doi``, ``dc:identifier``, a ``doi.org`` or ``…/doi/10.…`` link, then the link,
  then the title (:func:`digest.identity.key_of`);
- **listing date**: its published (else updated) time in the configured time zone; a bare
  date (``2026-12-03``) is that day; an undated entry, or one dated after the fetch date,
  belongs to the fetch date.

The bytes are decoded before feedparser sees them
(:func:`~digest.sources.feed_text.decode_body`: UTF-8 whenever they are valid UTF-8, else
the declared charset, else Windows-1252); feedparser itself repairs text that reads as UTF-8
encoded twice (``Ã©`` -> ``é``). Text, names and charsets: :mod:`digest.sources.feed_text`.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import feedparser

from digest.errors import SourceError
from digest.identity import arxiv_id_of, arxiv_version, doi_of, key_of, merge, paper_identities
from digest.models import Paper
from digest.sources.feed_text import (
    clean_block,
    clean_line,
    decode_body,
    feeds_named_by,
    html_block,
    html_line,
    person,
    split_authors,
)

_XML_DECLARATION = re.compile(r"\s*<\?xml\b")
_DATE_ONLY = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*$")
_DOI_IN_LINK = re.compile(r"/doi/(?:abs/|full/|pdf/|epdf/)?(10\.\d{4,9}/[^?#\s]+)", re.I)
_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.I)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
#: The tag ``dc:identifier``, ``prism:doi`` and friends take in a feedparser entry.
_DOI_FIELDS = ("prism_doi", "dc_identifier", "doi", "arxiv_doi", "id")


@dataclass(frozen=True)
class ParsedFeed:
    """A feed's papers with the listing date each belongs to, in the feed's order, each
    paper once; ``notes``: the warnings, each with the listing date of the entry it is
    about (None: about the feed: its charset, broken XML, skipped entries); the number of
    entries ``skipped`` (no title and no link)."""

    entries: tuple[tuple[date, Paper], ...]
    notes: tuple[tuple[date | None, str], ...] = ()
    skipped: int = 0

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every warning, in order."""
        return tuple(text for _, text in self.notes)

    def papers_of(self, day: date) -> tuple[Paper, ...]:
        """The papers whose listing date is ``day``."""
        return tuple(paper for listed, paper in self.entries if listed == day)

    def warnings_of(self, day: date) -> tuple[str, ...]:
        """The warnings about the feed and about the entries listed under ``day``."""
        return tuple(text for listed, text in self.notes if listed in (None, day))


def parse_feed(
    body: bytes,
    *,
    name: str,
    url: str,
    content_type: str | None,
    timezone: ZoneInfo,
    fetched: date,
) -> ParsedFeed:
    """The papers of a feed's response ``body`` (fetched from ``url`` on ``fetched``).

    ``name`` is the source's name (each paper's ``sources``); ``content_type`` the response's
    header (its charset, and whether the server calls it HTML). Broken XML with usable
    entries gives them with a warning. Raises :class:`SourceError` naming ``url`` for an
    empty body, an HTML page, or anything else with no entries that is not a valid feed.
    """
    if not body.strip():
        raise SourceError(
            url,
            "the response is empty, not an RSS/Atom feed",
            hint="check the source's url; the next run tries again",
        )
    text, said = decode_body(body, content_type)
    warnings: list[tuple[date | None, str]] = [(None, w) for w in said]
    result = feedparser.parse(
        io.BytesIO(text.encode("utf-8")),
        # No Content-Location: feedparser would resolve a guid such as "post-88" against
        # it and make it look like a page; links are resolved against ``url`` here instead.
        response_headers={"content-type": "application/xml; charset=utf-8"},
        # Every field is reduced to text here (feed_text), which drops all markup: feedparser's
        # own passes over the HTML (sanitizing, resolving links inside it) cost half the time.
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    raw_entries: Sequence[Any] = result.get("entries") or []
    broken = result.get("bozo_exception") if result.get("bozo") else None
    if not raw_entries and (broken is not None or not result.get("version")):
        raise _not_a_feed(url, text, content_type, broken)
    if broken is not None:
        what = _describe(broken, text)
        warnings.append((None, f"the feed is not well-formed ({what}): read what it holds"))
    atom = str(result.get("version") or "").startswith("atom")
    dated: list[tuple[date, Paper]] = []
    skipped = ahead = 0
    for index, entry in enumerate(raw_entries):
        notes: list[str] = []
        found = entry_paper(entry, name=name, url=url, atom=atom, timezone=timezone, notes=notes)
        if found is None:
            skipped += 1
            warnings.append((None, f"entry {index}: no title and no link, skipped"))
            continue
        listed = listing_date(entry, timezone, fetched)
        if listed > fetched:
            # A journal's issue date, a wrong clock: the entry is there now, so it is listed
            # now rather than on a day whose run may never see it.
            listed, ahead = fetched, ahead + 1
        warnings.extend((listed, f"entry {index} ({found.title[:60]}): {n}") for n in notes)
        dated.append((listed, found))
    if ahead:
        said_ahead = f"{_entries(ahead)} dated after {fetched} (the fetch day) listed on it"
        warnings.append((fetched, said_ahead))
    return ParsedFeed(tuple(_unique(dated, warnings)), tuple(warnings), skipped)


def _entries(count: int) -> str:
    return "1 entry" if count == 1 else f"{count} entries"


def _unique(
    dated: list[tuple[date, Paper]], warnings: list[tuple[date | None, str]]
) -> list[tuple[date, Paper]]:
    """One pair per paper, at the earliest date it was listed under: the grouping of
    :func:`digest.identity.dedupe` (records sharing any identity merged into the first, with
    :func:`digest.identity.merge`), keeping each group's dates."""
    papers: list[Paper] = []
    days: list[date] = []
    where: dict[str, int] = {}
    for day, paper in dated:
        keys = paper_identities(paper)
        index = next((where[k] for k in keys if k in where), None)
        if index is None:
            index = len(papers)
            papers.append(paper)
            days.append(day)
        else:
            papers[index] = merge(papers[index], paper)
            days[index] = min(days[index], day)
            warnings.append((days[index], f"{paper.title[:60]!r} is listed twice: kept once"))
        for key in [*keys, *paper_identities(papers[index])]:
            where.setdefault(key, index)
    return list(zip(days, papers, strict=True))


def listing_date(entry: Mapping[str, Any], timezone: ZoneInfo, fetched: date) -> date:
    """The date an entry is listed under: its published, else updated, time in
    ``timezone``; a bare ISO date is that date; without either, ``fetched``."""
    moment = entry_moment(entry, timezone)
    return moment.astimezone(timezone).date() if moment else fetched


def entry_moment(entry: Mapping[str, Any], timezone: ZoneInfo) -> datetime | None:
    """When an entry was published (else updated), in UTC; a bare date is its midnight in
    ``timezone``. None without a readable date."""
    for field in ("published", "updated", "created"):
        raw = entry.get(field)
        bare = _DATE_ONLY.match(raw) if isinstance(raw, str) else None
        if bare:
            try:
                day = date.fromisoformat(bare.group(1))
            except ValueError:
                continue
            return datetime(day.year, day.month, day.day, tzinfo=timezone).astimezone(UTC)
        parsed = entry.get(f"{field}_parsed")
        if isinstance(parsed, time.struct_time):
            try:
                return datetime(*parsed[:6], tzinfo=UTC)
            except (ValueError, OverflowError):
                continue
    return None


def entry_paper(
    entry: Mapping[str, Any],
    *,
    name: str,
    url: str,
    atom: bool,
    timezone: ZoneInfo,
    notes: list[str],
) -> Paper | None:
    """One feed entry as a :class:`Paper`, or None when it has neither a title nor a link.

    ``atom``: the feed is Atom (its ``type="text"`` fields are text, not HTML); ``timezone``
    places a bare date. Repairs go to ``notes``.
    """
    link = _link(entry, url, notes)
    title = _text(entry, "title", atom, block=False)
    if not title and not link:
        return None
    if not title:
        assert link is not None
        title = link
        notes.append("no title: its link stands for it")
    authors = _authors(entry, atom)
    candidates = [_str(entry.get("id")), link, *_hrefs(entry)]
    arxiv_from = next((c for c in candidates if arxiv_id_of(c)), None)
    doi = _doi(entry, link)
    arxiv_id = arxiv_id_of(arxiv_from, doi)  # an arXiv DOI (10.48550/arXiv.…) names one too
    return Paper(
        key=key_of(arxiv_id=arxiv_id, doi=doi, link=link, title=title, authors=authors),
        title=title,
        abstract=_abstract(entry, atom),
        authors=authors,
        arxiv_id=arxiv_id,
        published=entry_moment(entry, timezone),
        doi=doi,
        link=link,
        categories=_categories(entry),
        sources=(name,),
        version=arxiv_version(arxiv_from) if arxiv_from else None,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _is_html(detail: Any, atom: bool) -> bool:
    """Whether a text construct is HTML: Atom says so; RSS fields are HTML in practice
    (feedparser guesses ``text/plain`` for ``<i>x</i> & <script>``)."""
    kind = detail.get("type", "") if isinstance(detail, Mapping) else ""
    return not atom or kind in _HTML_TYPES


def _text(entry: Mapping[str, Any], field: str, atom: bool, *, block: bool) -> str:
    value = _str(entry.get(field))
    if value is None:
        return ""
    if _is_html(entry.get(f"{field}_detail"), atom):
        return html_block(value) if block else html_line(value)
    return clean_block(value) if block else clean_line(value)


def _abstract(entry: Mapping[str, Any], atom: bool) -> str:
    """The longest of the summary and the content blocks, as text."""
    texts = [_text(entry, "summary", atom, block=True)]
    for part in entry.get("content") or ():
        if isinstance(part, Mapping) and _str(part.get("value")):
            texts.append(_text({"c": part["value"], "c_detail": part}, "c", atom, block=True))
    return max(texts, key=len)


def _link(entry: Mapping[str, Any], base: str, notes: list[str]) -> str | None:
    """The entry's page: its ``link``, resolved against the feed's URL, when http(s); else a
    guid that is an absolute http(s) URL (an RSS guid is a permalink unless it says not, yet
    ``post-88`` or ``urn:uuid:…`` are no pages)."""
    raw = _str(entry.get("link"))
    guid = _str(entry.get("id"))
    if raw is None or (entry.get("guidislink") and raw == guid):
        if guid and urlsplit(guid.strip()).scheme.lower() in ("http", "https"):
            return guid.strip()
        return None
    try:
        resolved = urljoin(base, raw.strip())
        scheme = urlsplit(resolved).scheme.lower()
    except ValueError:
        scheme, resolved = "", raw
    if scheme in ("http", "https"):
        return resolved
    notes.append(f"link {clean_line(raw)[:60]!r} is not an http(s) address: dropped")
    return None


def _hrefs(entry: Mapping[str, Any]) -> list[str]:
    links = entry.get("links") or ()
    return [h for link in links if isinstance(link, Mapping) and (h := _str(link.get("href")))]


def _doi(entry: Mapping[str, Any], link: str | None) -> str | None:
    for field in _DOI_FIELDS:
        if found := doi_of(_str(entry.get(field))):
            return found
    for href in [*([link] if link else []), *_hrefs(entry)]:
        found = doi_of(href)
        if found is None and (m := _DOI_IN_LINK.search(href)):
            found = doi_of(m.group(1))
        if found:
            return found
    return None


def _authors(entry: Mapping[str, Any], atom: bool) -> tuple[str, ...]:
    """Every author's name once, in order; one string of several names is split.

    An RSS ``<author>`` is ``email (Name)``: feedparser's split of it cuts domains longer
    than four letters (``ada@c.example`` -> name ``ple (Ada Okafor``), so such an author is
    read from the raw string instead (:func:`person`).
    """
    raw: list[Any] = []
    for author in entry.get("authors") or ():
        if isinstance(author, Mapping) and not (author.get("email") and not atom):
            raw.append(author.get("name"))
    whole = _str(entry.get("author"))
    if whole and (not any(raw) or (not atom and "@" in whole)):
        raw.append(whole)
    names: list[str] = []
    for value in raw:
        if not isinstance(value, str):
            continue
        text = person(clean_line(value) if atom else html_line(value))
        for author in split_authors(text):
            if author not in names:
                names.append(author)
    return tuple(names)


def _categories(entry: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for tag in entry.get("tags") or ():
        if not isinstance(tag, Mapping):
            continue
        term = clean_line(_str(tag.get("term")) or _str(tag.get("label")) or "")
        if term and term not in found:
            found.append(term)
    return tuple(found)


def _not_a_feed(
    url: str, text: str, content_type: str | None, broken: BaseException | None
) -> SourceError:
    head = text.lstrip("\ufeff \t\r\n")[:2_000]
    if _HTML_START.search(head) or "html" in (content_type or "").lower():
        named = feeds_named_by(text, url)
        hint = (
            f"the page names its feed: {named[0]}; use that as the source's url"
            if named
            else "use the address of the feed itself (often ending in .rss, .xml, .atom or"
            " /feed), not of a web page"
        )
        return SourceError(
            url, "this is an HTML page, not an RSS/Atom feed: check the URL", hint=hint
        )
    what = (
        f"({_describe(broken, text)})" if broken is not None else "(no RSS or Atom element found)"
    )
    start = clean_line(head[:60])
    return SourceError(
        url,
        f"not an RSS/Atom feed {what}; it starts with {start!r}",
        hint="check the source's url: it must give an RSS or Atom feed",
    )


def _describe(error: BaseException, text: str) -> str:
    """A parse error in words, with its line in ``text`` (feedparser adds an XML
    declaration line to a document that has none)."""
    message = getattr(error, "getMessage", None)
    said = message() if callable(message) else str(error)
    line = getattr(error, "getLineNumber", None)
    number = line() if callable(line) else None
    if isinstance(number, int) and not _XML_DECLARATION.match(text):
        number -= 1
    where = f" at line {number}" if isinstance(number, int) and number > 0 else ""
    return f"{clean_line(str(said))[:120]}{where}"


__all__ = ["ParsedFeed", "entry_moment", "entry_paper", "listing_date", "parse_feed"]
