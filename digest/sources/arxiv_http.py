"""arXiv categories over HTTP: today's announcement from the RSS feed of the joined
categories, any other listing date from the query API, page by page, on the shared
:class:`~digest.sources.http.HttpEdge` (3 s between requests and one connection at a time
to arXiv, across processes: :mod:`digest.sources.gate`). Parsing is
:mod:`digest.sources.arxiv`'s job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx

from digest.errors import SourceError
from digest.models import Listing, Paper
from digest.sources.arxiv import (
    ANNOUNCE_TYPES,
    EASTERN,
    ApiPage,
    announcement_window,
    announces,
    in_categories,
    merge_repeats,
    parse_api,
    parse_rss,
    previous_listing,
    query_for,
)
from digest.sources.http import (
    DEFAULT_MAX_BYTES,
    HttpEdge,
    Validators,
    public_url,
    status_hint,
)

RSS_URL = "https://rss.arxiv.org/rss/"
API_URL = "https://export.arxiv.org/api/query"
#: arXiv's terms of use: at most one request every 3 seconds, one connection at a time.
MIN_INTERVAL = 3.0
#: A feed of joined categories holds at most this many items (shared/FORMATS.md §3.1).
RSS_LIMIT = 2000
PAGE_SIZE = 500  # API results per request (arXiv allows up to 2,000)
#: 10,000 papers a listing date: more than the busiest Tuesday of cs and math together, and
#: a third of the API's 30,000-result ceiling; at 3 s a page, a minute of requests.
MAX_PAGES = 20
#: arXiv's API sometimes answers a page with no entries and no totals for a while (a known
#: flake, see shared/FORMATS.md §4.2): such a page is asked again this many times.
EMPTY_PAGE_RETRIES = 3
#: arXiv announces at 20:00 US Eastern the evening before a listing date.
ANNOUNCED_AT = time(20, 0)
_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1"
_RATE_HINT = (
    "arXiv asks for one request every 3 seconds from a machine: check that nothing else here"
    " (or behind the same address) fetches arXiv too; the next run fetches this date again"
)


def _now() -> datetime:
    return datetime.now(UTC)


def _hint(status: int) -> str | None:
    if status == 400:
        return "arXiv refused the query: check the source's categories in the config"
    if status == 404:
        return "check rss_url and api_url of the source in the config"
    return status_hint(status)


class ArxivSource:
    """An ``arxiv`` source: the announcements of ``categories`` (archives such as ``cs`` or
    subject classes such as ``cs.CL``), of the ``announce`` types, for a listing date.

    ``fetch(day)``: a date without an announcement (Saturday, Sunday, an arXiv holiday) is
    an empty listing, without a request; the date of the current RSS feed
    (``{rss_url}{cat1+cat2+...}``) is read from it (from the API when the feed fails or is
    not that date's yet; completed from the API when it holds ``rss_limit`` items, arXiv's
    cap for a feed); any other date from the API: the submissions of its 14:00-to-14:00
    US Eastern cycle (:func:`~digest.sources.arxiv.announcement_window`), ``page_size`` a
    request, at most ``max_pages``. The API path gives new submissions and cross-lists:
    replacements are not in a submission window, so ``replace`` types only come from the
    feed. A date arXiv has not announced yet (before 20:00 US Eastern the evening before)
    raises :class:`SourceError`, as does any failure, naming the source and the URL.

    ``min_interval`` (None: the host's own; arXiv's 3 s is a floor the edge keeps anyway),
    ``validators`` (conditional GET of the feed: a 304 raises
    :class:`~digest.sources.http.NotModified`), ``gate_dir``, ``transport``, ``sleep`` and
    ``clock`` (an aware "now") are seams for the run and for tests.
    """

    kind = "arxiv"

    def __init__(
        self,
        name: str,
        categories: Sequence[str],
        *,
        announce: Collection[str] = ("new", "cross"),
        rss_url: str = RSS_URL,
        api_url: str = API_URL,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_bytes: int = DEFAULT_MAX_BYTES,
        user_agent: str | None = None,
        clock: Callable[[], datetime] | None = None,
        min_interval: float | None = MIN_INTERVAL,
        validators: Validators | None = None,
        gate_dir: Path | str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        backoff: float = 1.0,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
        rss_limit: int = RSS_LIMIT,
    ) -> None:
        unknown = sorted(set(announce) - set(ANNOUNCE_TYPES))
        if not categories or unknown or page_size < 1 or max_pages < 1:
            raise ValueError(
                "an arxiv source needs categories, announce types among"
                f" {', '.join(ANNOUNCE_TYPES)} (got {unknown}), page_size and max_pages >= 1"
            )
        self.name = name
        self.categories = tuple(dict.fromkeys(categories))
        self.announce = tuple(announce)
        self.rss_url = rss_url
        self.api_url = api_url
        self.clock = clock or _now
        self.page_size = page_size
        self.max_pages = max_pages
        self.rss_limit = rss_limit
        self.http = HttpEdge(
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_bytes=max_bytes,
            transport=transport,
            sleep=sleep,
            accept=_ACCEPT,
            hint=_hint,
            user_agent=user_agent,
            min_interval=min_interval,
            gate_dir=gate_dir,
            validators=validators,
        )

    @property
    def feed_url(self) -> str:
        """The RSS feed of the joined categories: ``{rss_url}cs.CL+cs.LG``."""
        return self.rss_url + "+".join(self.categories)

    def __repr__(self) -> str:
        return f"ArxivSource({self.name!r}, {list(self.categories)!r})"

    async def fetch(self, day: date) -> Listing:
        """The papers arXiv listed on ``day`` in the source's categories; see the class."""
        if announcement_window(day) is None:
            what = "a weekend" if day.weekday() >= 5 else "an arXiv holiday"
            return self._listing(day, [], [f"no arXiv announcement on {day} ({what})"])
        now = self.clock().astimezone(EASTERN)
        announced = datetime.combine(day - timedelta(days=1), ANNOUNCED_AT, EASTERN)
        if now < announced:
            raise SourceError(
                public_url(self.feed_url),
                f"arXiv source {self.name!r}: the listing of {day} is announced at"
                f" {announced:%Y-%m-%d %H:%M} US Eastern, not yet",
                hint="the next run fetches it",
            )
        warnings: list[str] = []
        async with self.http.client() as client:
            feed = _FeedResult([], complete=False, failed=False)
            if day == _latest_listing(now.date()):
                feed = await self._from_feed(client, day, warnings)
                if feed.complete:
                    return self._listing(day, feed.papers, warnings)
            try:
                papers = await self._from_api(client, day, warnings)
            except SourceError as exc:
                if not feed.failed:
                    raise
                reason = f"{exc.reason}; the RSS feed failed too"
                raise SourceError(exc.url, reason, hint=exc.hint) from exc
        return self._listing(day, merge_repeats([*feed.papers, *papers]), warnings)

    def _listing(self, day: date, papers: Sequence[Paper], warnings: Sequence[str]) -> Listing:
        return Listing(date=day, papers=tuple(papers), source=self.name, warnings=tuple(warnings))

    def _failure(self, exc: SourceError, hint: str | None = None) -> SourceError:
        """``exc`` naming this source; a 429 past the retries gets the rate hint."""
        why = hint or (_RATE_HINT if "HTTP 429" in exc.reason else exc.hint)
        return SourceError(exc.url, f"arXiv source {self.name!r}: {exc.reason}", hint=why)

    async def _from_feed(
        self, client: httpx.AsyncClient, day: date, warnings: list[str]
    ) -> _FeedResult:
        """``day``'s papers from the RSS feed: complete, or to be completed from the API (a
        feed cut at arXiv's limit), or none (the feed failed or is not that date's: the API
        is asked instead, with a warning)."""
        url = self.feed_url
        try:
            page = await self.http.get(client, url)
            feed = parse_rss(page.body, name=self.name, announce=self.announce, url=url)
        except SourceError as exc:
            warnings.append(f"the RSS feed failed ({exc}); the query API was asked instead")
            return _FeedResult([], complete=False, failed=True)
        if feed.day != day and (feed.day is not None or feed.items):
            warnings.append(f"the RSS feed is of {feed.day}, not {day}; the query API was asked")
            return _FeedResult([], complete=False, failed=False)
        warnings.extend(feed.warnings)
        if not feed.items:
            warnings.append(f"the RSS feed of {day} is empty: no announcement")
        if feed.items >= self.rss_limit:
            warnings.append(
                f"the RSS feed holds {feed.items:,} items, arXiv's limit for a feed: it may be"
                " cut, so the query API completed it (replacements past the cut are missing)"
            )
            return _FeedResult(feed.papers, complete=False, failed=False)
        return _FeedResult(feed.papers, complete=True, failed=False)

    async def _from_api(
        self, client: httpx.AsyncClient, day: date, warnings: list[str]
    ) -> list[Paper]:
        """The papers of ``day``'s submission window, every page, in submission order."""
        window = announcement_window(day)
        assert window is not None  # fetch() returned for days without one
        start, end = window
        query = query_for(self.categories, window)
        found: list[Paper] = []
        offset = 0
        for _ in range(self.max_pages):
            url = self._api_page_url(query, offset)
            page = await self._api_page(client, url, offset)
            warnings.extend(page.warnings)
            found += page.papers
            offset += page.entries
            if page.entries == 0 or offset >= (page.total_results or 0):
                break
        else:
            raise SourceError(
                public_url(self.api_url),
                f"arXiv source {self.name!r}: the listing of {day} did not end after"
                f" {self.max_pages} pages of {self.page_size} ({offset} papers)",
                hint="narrow the source's categories, or split it into two sources",
            )
        kept = [
            p
            for p in found
            if p.published is not None and start <= p.published < end and self._wanted(p)
        ]
        return merge_repeats(kept)

    def _wanted(self, paper: Paper) -> bool:
        """Whether a paper of the API is of an announce type asked for: ``new`` when its
        primary category is one of ours, ``cross`` when another of its categories is."""
        kind = "new" if in_categories(paper.primary_category, self.categories) else "cross"
        return kind in self.announce

    def _api_page_url(self, query: str, offset: int) -> str:
        params = {
            "search_query": query,
            "start": str(offset),
            "max_results": str(self.page_size),
            "sortBy": "submittedDate",
            "sortOrder": "ascending",
        }
        return f"{self.api_url}?{urlencode(params, quote_via=quote, safe=':*')}"

    async def _api_page(self, client: httpx.AsyncClient, url: str, offset: int) -> ApiPage:
        """One page of the API; a page without totals, or empty before the end, is asked
        again (:data:`EMPTY_PAGE_RETRIES` times)."""
        for _ in range(EMPTY_PAGE_RETRIES + 1):
            try:
                got = await self.http.get(client, url)
                page = parse_api(got.body, name=self.name, url=public_url(url))
            except SourceError as exc:
                raise self._failure(exc) from exc
            total = page.total_results
            if total is not None and (page.entries > 0 or offset >= total):
                return page
        raise SourceError(
            public_url(url),
            f"arXiv source {self.name!r}: the query API kept answering an empty page"
            f" (after {EMPTY_PAGE_RETRIES + 1} attempts)",
            hint="arXiv's API is having trouble; the next run fetches this date again",
        )


@dataclass(frozen=True)
class _FeedResult:
    papers: list[Paper]
    complete: bool  # the listing as it is; else the API completes (or replaces) it
    failed: bool


def _latest_listing(today: date) -> date:
    """The newest listing date on or before ``today`` (US Eastern): what the feed holds."""
    return today if announces(today) else previous_listing(today)
