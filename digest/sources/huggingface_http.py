"""The Hugging Face daily papers API over HTTP: every page of a day, on the shared
:class:`~digest.sources.http.HttpEdge`; parsing is :mod:`digest.sources.huggingface`'s job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from digest.errors import SourceError
from digest.models import Listing, Paper
from digest.sources.http import (
    DEFAULT_MAX_BYTES,
    MAX_RETRY_AFTER,
    HttpEdge,
    public_url,
    status_hint,
)
from digest.sources.huggingface import dedupe, load_document, parse_items

PAGE_SIZE = 100  # the API's maximum ``limit``
MAX_PAGES = 50  # 5,000 papers: far past any real day; guards against a server that loops


def page_url(url: str, day: date, page: int, limit: int) -> str:
    """``url`` asking for one page of ``day``: ``?date=YYYY-MM-DD&limit=N&p=P`` (0-based).

    Other query parameters of ``url`` are kept.
    """
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("date", "limit", "p")]
    query += [("date", day.isoformat()), ("limit", str(limit)), ("p", str(page))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _hint(status: int) -> str | None:
    if status == 400:
        return "the API refuses malformed dates and dates in the future"
    return status_hint(status)


def _today_utc() -> date:
    return datetime.now(UTC).date()


class HttpSource:
    """The Hugging Face daily papers API: ``GET url?date=D&limit=100&p=N``, every page.

    Pages are followed while one comes back full or with a ``Link: <…>; rel="next"``
    header (preferred when present), at most ``max_pages``; an empty or short page without
    a next link ends the listing. Each page is fetched through an :class:`HttpEdge` (the
    retries, ``Retry-After``, ``max_bytes``; see there) built from the same options.

    A date after today (in UTC, by ``today``) is clamped to today, since the API answers
    400 for it: the listing then carries today's date and a warning says so.

    ``user_agent``, ``min_interval`` and ``gate_dir`` are the edge's politeness (see there).
    ``transport`` and ``sleep`` are seams for tests (an ``httpx.MockTransport``, a sleep
    that records its delays).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        today: Callable[[], date] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
        max_retry_after: float = MAX_RETRY_AFTER,
        user_agent: str | None = None,
        min_interval: float | None = None,
        gate_dir: Path | str | None = None,
    ) -> None:
        if page_size < 1 or max_pages < 1 or max_retries < 0 or max_bytes < 1:
            raise ValueError("page_size, max_pages and max_bytes must be >= 1, max_retries >= 0")
        self.url = url
        self.today = today or _today_utc
        self.page_size = page_size
        self.max_pages = max_pages
        self.http = HttpEdge(
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_bytes=max_bytes,
            transport=transport,
            sleep=sleep,
            max_retry_after=max_retry_after,
            hint=_hint,
            user_agent=user_agent,
            min_interval=min_interval,
            gate_dir=gate_dir,
        )

    @property
    def timeout(self) -> float:
        """Seconds each request may take (the edge's)."""
        return self.http.timeout

    @property
    def max_retries(self) -> int:
        """Retries of a failing request (the edge's)."""
        return self.http.max_retries

    @property
    def max_bytes(self) -> int:
        """The largest response body taken (the edge's)."""
        return self.http.max_bytes

    def __repr__(self) -> str:
        return f"HttpSource({public_url(self.url)!r})"

    async def fetch(self, day: date) -> Listing:
        """Every paper of ``day`` (clamped to today), deduplicated; raises SourceError."""
        warnings: list[str] = []
        today = self.today()
        if day > today:
            warnings.append(
                f"{day} is in the future (today is {today} in UTC); fetched {today} instead"
            )
            day = today
        papers: list[Paper] = []
        async with self.http.client() as client:
            url = page_url(self.url, day, 0, self.page_size)
            fetched: set[str] = set()
            count = 0
            for page in range(self.max_pages):
                if url in fetched:
                    raise SourceError(
                        public_url(url),
                        "the next-page link points back to a page already fetched; giving up",
                    )
                fetched.add(url)
                got = await self.http.get(client, url)
                items, notes = load_document(got.body, public_url(url))
                found, skipped = parse_items(items, first_index=count)
                count += len(items)
                papers.extend(found)
                warnings.extend(f"page {page}: {n}" for n in notes)
                warnings.extend(skipped)
                if not items:
                    break
                if got.next is not None:
                    url = got.next
                elif len(items) >= self.page_size:
                    url = page_url(self.url, day, page + 1, self.page_size)
                else:
                    break
            else:
                raise SourceError(
                    public_url(url),
                    f"the listing did not end after {self.max_pages} pages ({count} items);"
                    " giving up",
                )
        unique = dedupe(papers, warnings)
        return Listing(
            date=day, papers=tuple(unique), source=public_url(self.url), warnings=tuple(warnings)
        )
