"""Sources: where the day's listings come from.

``base`` (the listing-source protocol, the HTTP edge with timeouts, retries and size limits,
and the local-file source), ``huggingface`` (the daily papers API's parser). Parsers are pure;
only the fetching edge does I/O. May import ``select``, ``compose`` and the bottom layer.
"""

from digest.sources.base import (
    MAX_BACKOFF,
    SOURCE_KINDS,
    FileSource,
    HttpSource,
    ListingSource,
    backoff_delay,
    excerpt,
    make_source,
    next_link,
    page_url,
    public_url,
    retry_after_seconds,
    retryable,
)

__all__ = [
    "MAX_BACKOFF",
    "SOURCE_KINDS",
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
