"""Sources: where the day's listings come from.

``base`` (the listing-source protocol and ``make_source``), ``http`` (the one HTTP edge every
source fetches through: timeouts, retries, ``Retry-After``, size limit, User-Agent),
``huggingface_http`` (the daily papers API, page by page, over that edge), ``arxiv_http``
(arXiv categories: today's RSS feed, other dates from the query API), ``feed_http`` (any
RSS/Atom feed), ``file`` (JSON files on disk), ``huggingface``, ``arxiv`` and ``feed`` (their
parsers; ``feed_text``: a feed's HTML as text). Parsers are pure; only the
fetching edge does I/O. May import ``select``, ``compose`` and the bottom layer.
"""

from digest.sources.arxiv_http import ArxivSource
from digest.sources.base import SOURCE_KINDS, ListingSource, make_source
from digest.sources.feed_http import FeedSource
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
    "FeedSource",
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
