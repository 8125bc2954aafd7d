"""Getting a day's listing: the Hugging Face API over HTTP, or JSON files on disk.

The I/O edge of the pipeline. Every failure leaves as :class:`SourceError` naming the URL
or file; parsing is :mod:`digest.sources.huggingface`'s job.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from digest import __version__
from digest.errors import SourceError
from digest.models import Listing, Paper
from digest.sources.huggingface import dedupe, load_document, parse_items

PAGE_SIZE = 100  # the API's maximum
MAX_PAGES = 50  # 5,000 papers: far past any real day; guards against a server that loops
MAX_RETRY_AFTER = 300.0  # seconds; a longer wait fails the run instead of hanging it
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ListingSource(Protocol):
    """Where listings come from: ``fetch(day)`` gives that date's papers."""

    async def fetch(self, day: date) -> Listing: ...


def _today_utc() -> date:
    return datetime.now(UTC).date()


def retry_delay(attempt: int, backoff: float, retry_after: str | None, now: datetime) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): the server's ``Retry-After`` when
    given (seconds or an HTTP date), else exponential backoff with jitter."""
    if retry_after:
        value = retry_after.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - now).total_seconds())
    base: float = backoff * 2 ** (attempt - 1)
    return base + random.uniform(0, base / 2)


def next_link(link_header: str | None, base: str) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, resolved against ``base``."""
    if not link_header:
        return None
    for part in link_header.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        rels = [p.strip() for p in params.split(";")]
        if any(p.replace(" ", "").lower() in ('rel="next"', "rel=next") for p in rels):
            return str(httpx.URL(base).join(target[1:-1]))
    return None


def _page_url(url: str, day: date, page: int, limit: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("date", "limit", "p")]
    query += [("date", day.isoformat()), ("limit", str(limit)), ("p", str(page))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _public(url: str) -> str:
    """``url`` without user info, safe for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class HttpSource:
    """The Hugging Face daily papers API (``GET url?date=D&limit=100&p=N``), all pages.

    Retries timeouts, connection errors, 5xx and 429 (honouring ``Retry-After``) up to
    ``max_retries`` times with exponential backoff. A date in the future is clamped to today
    in UTC (the API answers 400 for it); the listing then carries that date.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_bytes: int = 20_000_000,
        page_size: int = PAGE_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
        today: Callable[[], date] = _today_utc,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_bytes = max_bytes
        self.page_size = page_size
        self.transport = transport
        self.today = today
        self.sleep = sleep

    def __repr__(self) -> str:
        return f"HttpSource({_public(self.url)!r})"

    async def fetch(self, day: date) -> Listing:
        warnings: list[str] = []
        today = self.today()
        if day > today:
            warnings.append(f"{day} is in the future; fetched today's listing ({today}) instead")
            day = today
        papers: list[Paper] = []
        headers = {"User-Agent": f"paper-digest/{__version__}", "Accept": "application/json"}
        async with httpx.AsyncClient(
            timeout=self.timeout, headers=headers, follow_redirects=True, transport=self.transport
        ) as client:
            url: str | None = _page_url(self.url, day, 0, self.page_size)
            seen_urls: set[str] = set()
            page = 0
            while url is not None:
                if url in seen_urls or page >= MAX_PAGES:
                    raise SourceError(
                        _public(url), f"the listing did not end after {page} pages; giving up"
                    )
                seen_urls.add(url)
                items, link = await self._get(client, url)
                found, notes = parse_items(items, first_index=page * self.page_size)
                papers.extend(found)
                warnings.extend(f"page {page}: {n}" if page else n for n in notes)
                page += 1
                if link is not None:
                    url = link
                elif len(items) >= self.page_size:
                    url = _page_url(self.url, day, page, self.page_size)
                else:
                    url = None
        unique = dedupe(papers, warnings)
        return Listing(
            date=day, papers=tuple(unique), source=_public(self.url), warnings=tuple(warnings)
        )

    async def _get(self, client: httpx.AsyncClient, url: str) -> tuple[list[object], str | None]:
        """One page's JSON list and its next link, with retries."""
        shown = _public(url)
        attempt = 0
        while True:
            attempt += 1
            retry_after: str | None = None
            try:
                async with client.stream("GET", url) as response:
                    if response.status_code == 200:
                        body = await self._read(response, shown)
                        link = next_link(response.headers.get("link"), str(response.url))
                        return load_document(body, shown), link
                    excerpt = (await self._read(response, shown, limit=2_000))[:200]
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
                reason = f"HTTP {status}"
                text = excerpt.decode("utf-8", "replace").strip()
                if text:
                    reason += f": {' '.join(text.split())[:160]}"
                if status not in RETRY_STATUS:
                    raise SourceError(shown, reason, hint=_hint(status))
            except httpx.TimeoutException as exc:
                reason = f"no answer within {self.timeout:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                reason = f"connection failed: {exc or type(exc).__name__}"
            except httpx.HTTPError as exc:
                raise SourceError(shown, f"HTTP error: {exc}") from exc
            if attempt > self.max_retries:
                raise SourceError(shown, f"{reason} (after {attempt} attempts)")
            delay = retry_delay(attempt, self.backoff, retry_after, datetime.now(UTC))
            if delay > MAX_RETRY_AFTER:
                raise SourceError(shown, f"{reason}; the server asks to wait {delay:.0f} s")
            await self.sleep(delay)

    async def _read(self, response: httpx.Response, url: str, limit: int | None = None) -> bytes:
        """The body, refusing one over ``max_bytes`` (or stopping quietly at ``limit``)."""
        declared = response.headers.get("content-length", "")
        if limit is None and declared.isdigit() and int(declared) > self.max_bytes:
            raise SourceError(
                url,
                f"response of {int(declared):,} bytes is over the limit of "
                f"{self.max_bytes:,} (source.max_bytes)",
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break
            if size > self.max_bytes:
                raise SourceError(
                    url,
                    f"response larger than the limit of {self.max_bytes:,} "
                    "bytes (source.max_bytes)",
                )
        return b"".join(chunks)


def _hint(status: int) -> str | None:
    if status == 404:
        return "check source.url in the config"
    if status == 400:
        return "the API refuses malformed dates and dates in the future"
    if status in (401, 403):
        return "the server refuses access; check source.url"
    return None


class FileSource:
    """Listings in the API's JSON format on disk: a folder of ``YYYY-MM-DD.json`` files (a
    missing day is an empty listing, like a weekend) or one file used for every date."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r})"

    async def fetch(self, day: date) -> Listing:
        if self.path.is_dir():
            file = self.path / f"{day.isoformat()}.json"
            if not file.exists():
                return Listing(
                    date=day,
                    papers=(),
                    source=str(file),
                    warnings=(f"no listing file {file}: taken as an empty day",),
                )
        elif self.path.exists():
            file = self.path
        else:
            raise SourceError(
                str(self.path), "no such file or folder", hint="check source.path in the config"
            )
        try:
            body = file.read_bytes()
        except OSError as exc:
            raise SourceError(str(file), f"cannot read: {exc.strerror or exc}") from exc
        warnings: list[str] = []
        found, notes = parse_items(load_document(body, str(file)))
        warnings.extend(notes)
        papers = dedupe(found, warnings)
        return Listing(date=day, papers=tuple(papers), source=str(file), warnings=tuple(warnings))


def make_source(
    kind: str,
    url_or_path: str,
    *,
    timeout: float = 30.0,
    max_retries: int = 4,
    max_bytes: int = 20_000_000,
) -> ListingSource:
    """The source for config ``source.kind``: ``huggingface`` (HTTP) or ``file``."""
    if kind == "huggingface":
        return HttpSource(
            url_or_path, timeout=timeout, max_retries=max_retries, max_bytes=max_bytes
        )
    if kind == "file":
        return FileSource(Path(url_or_path))
    raise ValueError(f"unknown source kind {kind!r}")
