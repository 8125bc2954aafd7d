"""The archive: the stored listing dates, every paper of one date in the order a digest
gives them (rank, then upvotes), and a search over the recent papers in the query language."""

from __future__ import annotations

import asyncio
import threading
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from digest.compose import paper_view
from digest.errors import QueryError
from digest.models import Match, Paper
from digest.select import DayMatcher
from digest.serve.forms import MAX_QUERIES, unsafe_character
from digest.serve.pages import Handlers, Site

#: The index lists this many listing dates (those with papers).
INDEX_DAYS = 90
#: The search looks in the papers of this many recent listing dates, at most SEARCH_LIMIT.
SEARCH_DAYS = 30
SEARCH_LIMIT = 3_000
#: Search results per page.
PAGE_SIZE = 20
MAX_QUERY = 500


class Archive(Handlers):
    """The archive pages."""

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self._lock = threading.Lock()  # a DayMatcher's caches are not thread-safe
        self._matcher: tuple[tuple[Paper, ...], DayMatcher] | None = None
        self._several = len(self.config.sources) > 1  # each paper names its sources

    async def archive_index(self, request: Request) -> Response:
        days = await asyncio.to_thread(self.store.papers.day_counts, INDEX_DAYS)
        return self.site.page("archive_index", days=days, q="")

    async def archive_day(self, request: Request) -> Response:
        """A day's papers, best first as in a digest; ``?q=`` (repeated) and ``?x=`` keep
        those a digest of these keywords and exclusions would hold (the email's "view in
        browser" link), in its order."""
        try:
            day = date.fromisoformat(request.path_params["day"])
        except ValueError:
            return self.site.not_found()
        listing = await asyncio.to_thread(self.store.papers.listing, day)
        if listing is None:
            return self.site.message(
                "No listing for this date",
                f"Nothing was fetched for {day.isoformat()}.",
                404,
                action_url="/archive/",
                action_text="All dates",
            )
        keywords = _queries(request, "q")
        exclude = _queries(request, "x")
        try:
            matches = DayMatcher(listing.papers).select(keywords, exclude)
        except QueryError:
            keywords, exclude = [], []
            matches = DayMatcher(listing.papers).select([])
        dates = [d for d, _ in await asyncio.to_thread(self.store.papers.day_counts, INDEX_DAYS)]
        newer = [d for d in dates if d > day]
        older = [d for d in dates if d < day]
        return self.site.page(
            "archive_day",
            day=day,
            papers=[paper_view(m, show_sources=self._several) for m in matches],
            total=len(listing.papers),
            keywords=keywords,
            exclude=exclude,
            newer=min(newer) if newer else None,
            older=max(older) if older else None,
            q="",
        )

    async def archive_search(self, request: Request) -> Response:
        """``?q=QUERY&page=N``: the recent papers matching QUERY, best first, a page at a time."""
        q = request.query_params.get("q", "").strip()[:MAX_QUERY]
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        context: dict[str, Any] = {
            "q": q,
            "page": page,
            "papers": [],
            "count": 0,
            "pages": 0,
            "error": None,
        }
        context["searched_days"] = SEARCH_DAYS
        context["start"] = (page - 1) * PAGE_SIZE + 1
        if not q:
            return self.site.page("archive_search", **context)
        problem = unsafe_character(q)
        if problem:
            context["error"] = f"The query holds {problem}."
            return self.site.page("archive_search", 400, **context)
        try:
            matches = await asyncio.to_thread(self._search, q)
        except QueryError as exc:
            context["error"] = f"{exc.reason} (at character {exc.position + 1})."
            return self.site.page("archive_search", 400, **context)
        start = (page - 1) * PAGE_SIZE
        context["papers"] = [
            paper_view(m, show_sources=self._several) for m in matches[start : start + PAGE_SIZE]
        ]
        context["count"] = len(matches)
        context["pages"] = (len(matches) + PAGE_SIZE - 1) // PAGE_SIZE
        return self.site.page("archive_search", **context)

    def _search(self, query: str) -> list[Match]:
        """The recent papers matching ``query``, best first; raises QueryError. Indexing
        thousands of papers takes seconds: the matcher is kept until the papers change."""
        papers = tuple(self.store.papers.recent_papers(SEARCH_DAYS, SEARCH_LIMIT))
        with self._lock:
            if self._matcher is None or self._matcher[0] != papers:
                self._matcher = (papers, DayMatcher(papers))
            return self._matcher[1].select([query])


def _queries(request: Request, name: str) -> list[str]:
    """The queries of a repeated query parameter, blank and unsafe ones left out."""
    found = [v.strip() for v in request.query_params.getlist(name)]
    return [v[:MAX_QUERY] for v in found if v and not unsafe_character(v)][:MAX_QUERIES]
