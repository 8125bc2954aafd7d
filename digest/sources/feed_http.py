"""A generic RSS/Atom feed over HTTP (``kind = "feed"``): one GET on the shared
:class:`~digest.sources.http.HttpEdge`, parsed by :mod:`digest.sources.feed`.

A feed holds its recent entries only, whatever the day asked: ``fetch(day)`` gives the
entries whose listing date (their published time in the configured time zone, or the fetch
date for undated ones) is ``day``. A past day gives what the feed still holds for it; the
listing warns when ``day`` is older than the feed's oldest entry.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from digest.models import Listing
from digest.sources.feed import ParsedFeed, parse_feed
from digest.sources.http import (
    DEFAULT_MAX_BYTES,
    HttpEdge,
    NotModified,
    Validators,
    public_url,
)

#: What a feed is served as (RFC 4287 Atom, the RSS and RDF types in use), HTML last.
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9,"
    " application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
#: Seconds one fetched feed answers for other days (a catch-up asks for several in a row).
CACHE_SECONDS = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


class FeedSource:
    """The source ``name``: the RSS or Atom feed at ``url``.

    ``timezone`` decides which day an entry belongs to; ``clock`` gives the time of the
    fetch (its date in ``timezone`` is the listing date of undated entries). ``user_agent``
    (None: the edge's default), ``min_interval`` (None: the host's own) and ``gate_dir`` go
    to the :class:`HttpEdge`. With ``validators`` the feed is fetched conditionally: a 304
    raises :class:`NotModified` (nothing new since the last fetch: the run keeps what it
    stored) unless this source still holds the feed it read before. ``transport`` and
    ``sleep`` are seams for tests.
    """

    kind = "feed"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timezone: ZoneInfo,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_bytes: int = DEFAULT_MAX_BYTES,
        user_agent: str | None = None,
        clock: Callable[[], datetime] | None = None,
        min_interval: float | None = None,
        validators: Validators | None = None,
        gate_dir: Path | str | None = None,
        backoff: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        if max_retries < 0 or max_bytes < 1:
            raise ValueError("max_bytes must be >= 1, max_retries >= 0")
        self.name = name
        self.url = url
        self.timezone = timezone
        self.clock = clock or _now
        self.cache_seconds = cache_seconds
        self.http = HttpEdge(
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_bytes=max_bytes,
            transport=transport,
            sleep=sleep,
            accept=ACCEPT,
            hint=self._hint,
            user_agent=user_agent,
            min_interval=min_interval,
            gate_dir=gate_dir,
            validators=validators,
        )
        self._cached: tuple[float, ParsedFeed] | None = None

    def __repr__(self) -> str:
        return f"FeedSource({self.name!r}, {public_url(self.url)!r})"

    def _hint(self, status: int) -> str | None:
        if status in (404, 410):
            return f"the feed is gone: check the url of source {self.name!r} in the config"
        if status in (401, 403):
            return f"the server refuses access; check the url of source {self.name!r}"
        return None

    async def fetch(self, day: date) -> Listing:
        """The papers the feed lists under ``day``; raises SourceError (unreachable, an HTML
        page, not a feed)."""
        parsed = await self.read()
        warnings = list(parsed.warnings_of(day))
        papers = parsed.papers_of(day)
        if not papers and parsed.entries:
            oldest = min(listed for listed, _ in parsed.entries)
            if day < oldest:
                warnings.append(
                    f"the feed's oldest entry is of {oldest}: entries of {day} may have"
                    " left it already"
                )
        return Listing(date=day, papers=papers, source=self.name, warnings=tuple(warnings))

    async def read(self) -> ParsedFeed:
        """The whole feed, fetched now (or within the last ``cache_seconds``); raises
        SourceError, or NotModified (see the class)."""
        if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        content_type: list[str] = []

        async def remember(response: httpx.Response) -> None:
            content_type.append(response.headers.get("content-type", ""))

        async with self.http.client() as client:
            # The edge's Page has no headers; the charset is in the Content-Type.
            hooks = client.event_hooks
            hooks["response"] = [*hooks.get("response", []), remember]
            client.event_hooks = hooks
            try:
                page = await self.http.get(client, self.url)
            except NotModified:
                if self._cached is None:
                    raise
                self._cached = (time.monotonic(), self._cached[1])
                return self._cached[1]
        fetched = self.clock().astimezone(self.timezone).date()
        parsed = parse_feed(
            page.body,
            name=self.name,
            url=public_url(self.url),
            content_type=content_type[-1] if content_type else None,
            timezone=self.timezone,
            fetched=fetched,
        )
        self._cached = (time.monotonic(), parsed)
        return parsed
