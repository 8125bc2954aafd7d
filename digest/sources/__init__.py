"""Sources: where the day's listings come from.

``base`` (the listing-source protocol and ``make_source``), ``http`` (the one HTTP edge every
source fetches through: timeouts, retries, ``Retry-After``, size limit, User-Agent),
``huggingface_http`` (the daily papers API, page by page, over that edge), ``arxiv_http``
(arXiv categories: today's RSS feed, other dates from the query API), ``file`` (JSON files
on disk), ``huggingface`` and ``arxiv`` (their parsers). Parsers are pure; only the
fetching edge does I/O. May import ``select``, ``compose`` and the bottom layer.
"""

from digest.sources.arxiv_http import ArxivSource
from digest.sources.base import SOURCE_KINDS, ListingSource, make_source
from digest.sources.file import FileSource
from digest.sources.http import (
    MAX_BACKOFF,
    backoff_delay,
    excerpt,
    next_link,
    public_url,
    retry_after_seconds,
    retryable,
)
from digest.sources.huggingface_http import HttpSource, page_url

__all__ = [
    "MAX_BACKOFF",
    "SOURCE_KINDS",
    "ArxivSource",
    "FileSource",
    "HttpSource",
    "ListingSource",
    "backoff_delay",
    "excerpt",
    "make_source",
    "next_link",
    "page_url",
    "public_url",
    "retry_after_seconds",
    "retryable",
]
