"""arXiv's listings, parsed: the RSS feed of an announcement (shared/FORMATS.md §3), a page of
the query API (§4), and the calendar that says which submissions an announcement holds.

Pure: bytes in, papers out; no network, no clock. A body that is not the promised XML (an
HTML page, garbage, the API's error entry) raises :class:`SourceError` with a message a
person can act on. XML is read with entities left unresolved and no network access.

Listing dates are arXiv's own: the date of the feed built at midnight US Eastern after an
announcement (Sunday's 20:00 announcement is Monday's listing, Monday's is Tuesday's...).
:func:`announcement_window` gives the submission window of such a date: the 14:00-to-14:00
US Eastern cycle before its announcement, weekends folded into Monday's cycle (the Tuesday
listing), and None for a date with no announcement (Saturday, Sunday, :data:`HOLIDAYS`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from lxml import etree  # type: ignore[import-untyped]

from digest.errors import SourceError
from digest.identity import arxiv_id_of, arxiv_version, doi_of, key_of, merge
from digest.models import Paper
from digest.sources.huggingface import clean_block, clean_line

EASTERN = ZoneInfo("America/New_York")
#: arXiv's daily submission deadline, US Eastern.
DEADLINE = time(14, 0)
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")

#: Listing dates on which arXiv makes no announcement besides weekends, from
#: https://info.arxiv.org/help/availability.html ("2026 Holidays", arxiv-docs 8332d7e,
#: 2026-07-24). arXiv lists them as weekdays (Fridays among them), so they are taken as
#: listing dates. The cycle of a holiday is announced with the next listing. Add next year's
#: when arXiv publishes them; a missing entry only dates that cycle's papers a day early in
#: a catch-up (today's listing always comes from the RSS feed, which knows).
HOLIDAYS: frozenset[date] = frozenset(
    date.fromisoformat(d)
    for d in (
        "2026-01-01",  # New Year's Day
        "2026-01-19",  # Martin Luther King Jr. Day
        "2026-06-19",  # Juneteenth
        "2026-07-03",  # Independence Day (observed)
        "2026-09-07",  # Labor Day
        "2026-11-26",  # Thanksgiving
        "2026-12-25",  # Christmas
        "2026-12-29",
        "2026-12-31",
    )
)

_ARXIV = "{http://arxiv.org/schemas/atom}"
_ATOM = "{http://www.w3.org/2005/Atom}"
_OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
_DC = "{http://purl.org/dc/elements/1.1/}"
#: ``arXiv:2611.04217v1 Announce Type: new \nAbstract: ...`` (the head of an RSS description).
_HEAD = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.I)
#: Something that is an HTML tag, not a comparison in LaTeX (``$a<b$ and $c>d$``).
_TAG = re.compile(r"</?[a-z][a-z0-9]*(?:\s+[^<>]*)?/?>", re.I)
_AUTHOR_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s*;\s*")
_ET_AL = re.compile(r"[\s,]*\bet al\.?$", re.I)
_SUFFIX = re.compile(r"^(?:jr|sr|ii|iii|iv)\.?$", re.I)
#: Archives that have subject classes (``cs`` stands for every ``cs.*``).
_ARCHIVES_WITH_CLASSES = frozenset(
    {"astro-ph", "cond-mat", "cs", "econ", "eess", "math", "nlin", "physics", "q-bio"}
    | {"q-fin", "stat"}
)


@dataclass(frozen=True)
class ArxivFeed:
    """One RSS feed: its listing date (None when it names none), the papers of the announce
    types asked for, how many items were of other types, and what was repaired or skipped."""

    day: date | None
    papers: list[Paper]
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    items: int = 0  # every item of the feed, of any type


@dataclass(frozen=True)
class ApiPage:
    """One page of the query API: its papers in order and the paging numbers it gave
    (``total_results`` None when the page had none: arXiv's flaky empty page)."""

    papers: list[Paper]
    total_results: int | None
    start: int
    items_per_page: int
    warnings: list[str] = field(default_factory=list)
    entries: int = 0  # entries on the page, those skipped included (paging counts them)


def text_of(value: str | None) -> str:
    """``value`` with HTML tags dropped and entities decoded (``<i>Q</i> &amp; A`` -> ``Q &
    A``); what remains is text, to be escaped by whoever renders it."""
    if not value:
        return ""
    if "<" in value:
        value = _TAG.sub("", value)
    return html.unescape(value) if "&" in value else value


def split_authors(creator: str) -> tuple[str, ...]:
    """The names of a ``dc:creator``: split at commas, semicolons and ``and`` (``A, B and
    C``); a ``Jr.``-like suffix stays with its name; ``et al.`` is dropped."""
    names: list[str] = []
    text = _ET_AL.sub("", clean_line(text_of(creator)))
    for piece in _AUTHOR_SPLIT.split(text):
        piece = piece.strip()
        if not piece or piece.lower().rstrip(".") == "et al":
            continue
        if names and _SUFFIX.match(piece):
            names[-1] = f"{names[-1]}, {piece}"
            continue
        names.append(piece[:200])
    return tuple(names)


def _parse_xml(body: bytes, url: str, expected: str) -> etree._Element:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    head = body.lstrip()[:200].lower()
    if not head:
        raise SourceError(url, f"expected {expected}, got an empty body")
    if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
        raise SourceError(url, f"expected {expected}, got an HTML page", hint=_HTML_HINT)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        first = clean_line(body[:60].decode("utf-8", "replace"))
        raise SourceError(
            url, f"expected {expected}, got text that is not XML ({exc.msg}; starts {first!r})"
        ) from exc
    if root is None:
        raise SourceError(url, f"expected {expected}, got an empty document")
    if etree.QName(root).localname.lower() == "html":
        raise SourceError(url, f"expected {expected}, got an HTML page", hint=_HTML_HINT)
    return root


_HTML_HINT = "check rss_url and api_url in the config: a proxy or an error page answered"


def _text(parent: etree._Element, path: str) -> str | None:
    """The text of ``parent``'s first ``path`` element and its children, None without one;
    an entity reference (left unresolved on purpose) counts as nothing."""
    element = parent.find(path)
    return None if element is None else _all_text(element)


def _all_text(element: etree._Element) -> str:
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            parts.append(_all_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _eastern_date(raw: str | None) -> date | None:
    if not raw or not raw.strip():
        return None
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(EASTERN).date()


def parse_rss(body: bytes, *, name: str, announce: Collection[str], url: str = "") -> ArxivFeed:
    """The papers of an arXiv RSS 2.0 feed whose ``arxiv:announce_type`` is in ``announce``.

    The feed's date is its channel's ``pubDate`` (else ``lastBuildDate``, else an item's
    ``pubDate``) in US Eastern. A paper listed twice (two categories joined) is one paper.
    Raises :class:`SourceError` (naming ``url``, else ``name``) for anything but RSS.
    """
    where = url or name
    root = _parse_xml(body, where, "arXiv's RSS feed")
    channel = root.find("channel")
    if etree.QName(root).localname != "rss" or channel is None:
        tag = etree.QName(root).localname
        raise SourceError(where, f"expected arXiv's RSS feed (<rss><channel>), got <{tag}>")
    day = _eastern_date(_text(channel, "pubDate")) or _eastern_date(_text(channel, "lastBuildDate"))
    papers: list[Paper] = []
    warnings: list[str] = []
    skipped = 0
    items = channel.findall("item")
    for index, item in enumerate(items):
        kind = (_text(item, f"{_ARXIV}announce_type") or "new").strip().lower()
        if day is None:
            day = _eastern_date(_text(item, "pubDate"))
        if kind not in announce:
            skipped += 1
            continue
        paper = _rss_paper(item, name, warnings, index)
        if paper is not None:
            papers.append(paper)
    unique = merge_repeats(papers)
    if len(unique) < len(papers):
        warnings.append(f"{len(papers) - len(unique)} item(s) listed twice, merged")
    return ArxivFeed(day, unique, skipped, warnings, len(items))


def merge_repeats(papers: Iterable[Paper]) -> list[Paper]:
    """``papers`` with the records of one key merged into the first (categories of both):
    :func:`digest.identity.dedupe` for papers that all have an arXiv id, without computing
    every other identity of each."""
    out: dict[str, Paper] = {}
    for paper in papers:
        first = out.get(paper.key)
        out[paper.key] = paper if first is None else merge(first, paper)
    return list(out.values())


def _rss_paper(item: etree._Element, name: str, warnings: list[str], index: int) -> Paper | None:
    guid = _text(item, "guid") or ""
    link = _text(item, "link") or ""
    description = _text(item, "description") or ""
    head = _HEAD.match(description)
    arxiv_id = arxiv_id_of(guid, link, head.group(0).split()[0] if head else None)
    title = clean_line(text_of(_text(item, "title")))
    if not title or not arxiv_id:
        what = "no title" if not title else "no arXiv id in its guid or link"
        warnings.append(f"item {index} ({clean_line(guid or link)[:60]}): {what}, skipped")
        return None
    abstract = description[head.end() :] if head else description
    authors = split_authors(_text(item, f"{_DC}creator") or "")
    categories = _unique(clean_line(c.text or "") for c in item.findall("category"))
    doi = _first_doi(_text(item, f"{_ARXIV}DOI") or _text(item, f"{_ARXIV}doi"))
    return Paper(
        key=key_of(arxiv_id=arxiv_id),  # an arXiv id is the key; no need to hash the title
        title=title,
        abstract=clean_block(text_of(abstract)),
        authors=authors,
        arxiv_id=arxiv_id,
        published=_moment(_text(item, "pubDate")),
        doi=doi,
        link=f"https://arxiv.org/abs/{arxiv_id}",
        categories=categories,
        sources=(name,),
        version=arxiv_version(guid) or arxiv_version(head.group(0).split()[0] if head else None),
    )


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return tuple(seen)


def _first_doi(raw: str | None) -> str | None:
    for part in (raw or "").split():
        found = doi_of(part)
        if found:
            return found
    return None


@lru_cache(maxsize=64)  # every item of a feed has the same pubDate
def _moment(raw: str | None) -> datetime | None:
    if not raw or not raw.strip():
        return None
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _iso(raw: str | None) -> datetime | None:
    if not raw or not raw.strip():
        return None
    try:
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def parse_api(body: bytes, *, name: str, url: str = "") -> ApiPage:
    """One Atom page of arXiv's query API: its papers (primary category first, the version
    of the entry's id, ``published`` = when v1 was submitted) and its paging numbers.

    arXiv's error form (HTTP 200, one entry titled ``Error``) raises :class:`SourceError`
    carrying arXiv's message, as does anything that is not an Atom feed.
    """
    where = url or name
    root = _parse_xml(body, where, "an Atom feed from arXiv's query API")
    if root.tag != f"{_ATOM}feed":
        tag = etree.QName(root).localname
        raise SourceError(where, f"expected an Atom <feed> from arXiv's query API, got <{tag}>")
    entries = root.findall(f"{_ATOM}entry")
    if len(entries) == 1 and _is_error(entries[0]):
        message = clean_line(_text(entries[0], f"{_ATOM}summary") or "no message")
        raise SourceError(
            where,
            f"arXiv's API answered with an error: {message}",
            hint="check categories and api_url of this source in the config",
        )
    warnings: list[str] = []
    papers = [p for i, e in enumerate(entries) if (p := _api_paper(e, name, warnings, i))]
    return ApiPage(
        papers,
        _integer(_text(root, f"{_OPENSEARCH}totalResults")),
        _integer(_text(root, f"{_OPENSEARCH}startIndex")) or 0,
        _integer(_text(root, f"{_OPENSEARCH}itemsPerPage")) or 0,
        warnings,
        len(entries),
    )


def _is_error(entry: etree._Element) -> bool:
    title = (_text(entry, f"{_ATOM}title") or "").strip()
    return title == "Error" or "/api/errors" in (_text(entry, f"{_ATOM}id") or "")


def _integer(raw: str | None) -> int | None:
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def _api_paper(entry: etree._Element, name: str, warnings: list[str], index: int) -> Paper | None:
    raw_id = _text(entry, f"{_ATOM}id") or ""
    arxiv_id = arxiv_id_of(raw_id)
    title = clean_line(text_of(_text(entry, f"{_ATOM}title")))
    if not title or not arxiv_id:
        what = "no title" if not title else "no arXiv id"
        warnings.append(f"entry {index} ({clean_line(raw_id)[:60]}): {what}, skipped")
        return None
    authors = tuple(
        n
        for n in (
            clean_line(text_of(_text(a, f"{_ATOM}name")))[:200]
            for a in entry.findall(f"{_ATOM}author")
        )
        if n
    )
    primary = entry.find(f"{_ARXIV}primary_category")
    terms = [primary.get("term", "")] if primary is not None else []
    terms += [c.get("term", "") for c in entry.findall(f"{_ATOM}category")]
    doi_link = next(
        (a.get("href") for a in entry.findall(f"{_ATOM}link") if a.get("title") == "doi"), None
    )
    doi = _first_doi(_text(entry, f"{_ARXIV}doi")) or doi_of(doi_link)
    return Paper(
        key=key_of(arxiv_id=arxiv_id),  # an arXiv id is the key; no need to hash the title
        title=title,
        abstract=clean_block(text_of(_text(entry, f"{_ATOM}summary"))),
        authors=authors,
        arxiv_id=arxiv_id,
        published=_iso(_text(entry, f"{_ATOM}published")),
        doi=doi,
        link=f"https://arxiv.org/abs/{arxiv_id}",
        categories=_unique(clean_line(t) for t in terms),
        sources=(name,),
        version=arxiv_version(raw_id),
    )


def announces(day: date) -> bool:
    """Whether arXiv has a listing dated ``day`` (not a weekend, not a holiday)."""
    return day.weekday() < 5 and day not in HOLIDAYS


def _cutoff(day: date) -> datetime:
    """The deadline of the submissions listed on ``day``: 14:00 US Eastern on the weekday
    before it (Friday for a Monday)."""
    before = day - timedelta(days=3 if day.weekday() == 0 else 1)
    return datetime.combine(before, DEADLINE, EASTERN)


def announcement_window(day: date) -> tuple[datetime, datetime] | None:
    """The submissions arXiv lists on ``day``: ``[start, end)`` as aware UTC datetimes, or
    None when ``day`` has no listing (Saturday, Sunday, :data:`HOLIDAYS`).

    ``end`` is the 14:00 US Eastern deadline on the weekday before ``day``; ``start`` is the
    deadline of the previous listing date, so a weekend (and a holiday's cycle) is folded
    into the next listing: Monday's is Thursday 14:00 to Friday 14:00, Tuesday's Friday
    14:00 to Monday 14:00.
    """
    if not announces(day):
        return None
    return _cutoff(previous_listing(day)).astimezone(UTC), _cutoff(day).astimezone(UTC)


def previous_listing(day: date) -> date:
    """The last listing date before ``day``."""
    previous = day - timedelta(days=1)
    while not announces(previous):
        previous -= timedelta(days=1)
    return previous


def category_terms(categories: Sequence[str]) -> list[str]:
    """The ``cat:`` terms of ``categories``: an archive with subject classes (``cs``) is
    ``cat:cs.*``; a subject class or a single-class archive (``hep-th``) is itself."""
    terms: list[str] = []
    for category in categories:
        term = f"cat:{category}.*" if category in _ARCHIVES_WITH_CLASSES else f"cat:{category}"
        if term not in terms:
            terms.append(term)
    return terms


def query_for(categories: Sequence[str], window: tuple[datetime, datetime]) -> str:
    """The API's ``search_query`` for the submissions of ``window`` in ``categories``:
    ``(cat:cs.CL OR cat:cs.LG) AND submittedDate:[202611061900 TO 202611091900]`` (GMT,
    both ends included: the caller keeps ``start <= published < end``)."""
    start, end = (moment.astimezone(UTC).strftime("%Y%m%d%H%M") for moment in window)
    cats = " OR ".join(category_terms(categories))
    return f"({cats}) AND submittedDate:[{start} TO {end}]"


def in_categories(category: str | None, categories: Collection[str]) -> bool:
    """Whether ``category`` is one of ``categories`` or a subject class of one of them."""
    if not category:
        return False
    return any(category == c or category.startswith(c + ".") for c in categories)
