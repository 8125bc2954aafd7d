"""The listing-source seam: the :class:`ListingSource` protocol, and :func:`make_source`,
which builds the one the config's ``source.kind`` names."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Protocol

from digest.models import Listing
from digest.sources.file import FileSource
from digest.sources.huggingface_http import HttpSource

#: The kinds ``source.kind`` accepts (the config declares the same choice).
SOURCE_KINDS = ("huggingface", "file")


class ListingSource(Protocol):
    """Where listings come from: ``fetch(day)`` gives that date's papers or a SourceError."""

    async def fetch(self, day: date) -> Listing: ...


def make_source(
    kind: str, url_or_path: str, *, timeout: float, max_retries: int, max_bytes: int
) -> ListingSource:
    """The source for config ``source.kind``: ``huggingface`` (:class:`HttpSource` on the
    URL) or ``file`` (:class:`FileSource` on the path); anything else is a ValueError."""
    if kind == "huggingface":
        return HttpSource(
            url_or_path, timeout=timeout, max_retries=max_retries, max_bytes=max_bytes
        )
    if kind == "file":
        return FileSource(Path(url_or_path))
    raise ValueError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
