"""Listings from JSON files on disk (the API's format), for ``digest demo``, tests and
mirrors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from digest.errors import SourceError
from digest.models import Listing
from digest.sources.huggingface import dedupe, load_document, parse_items


class FileSource:
    """Listings in the API's JSON format on disk, for ``digest demo``, tests and mirrors.

    Files are UTF-8 (a byte order mark is fine).
    ``path`` is a folder of ``YYYY-MM-DD.json`` files (a day without its file is an empty
    listing, like a weekend, with a warning) or one ``.json`` file served for every date. A
    ``path`` that does not exist, an unreadable file or one not in the format raise
    :class:`SourceError` naming the file. Dates are not clamped.
    """

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
                    warnings=(f"no file {file.name} in {self.path}: an empty listing",),
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
        items, warnings = load_document(body, str(file))
        found, notes = parse_items(items)
        warnings.extend(notes)
        papers = dedupe(found, warnings)
        return Listing(date=day, papers=tuple(papers), source=str(file), warnings=tuple(warnings))
