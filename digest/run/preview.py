"""What a query would have brought: the papers of the last stored listings it matches.

Reads stored listings only and writes nothing; ``digest preview`` and the subscribe page's
live preview both use it. Matchers are cached per listing date, so a page typing query
after query stays cheap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from digest.models import Listing, Match
from digest.select import DayMatcher, validate
from digest.store import Store


@dataclass(frozen=True)
class DayPreview:
    """One listing date: how many papers it had and which ones the query matched, best first."""

    day: date
    total: int
    matches: tuple[Match, ...]


class Previewer:
    """Previews over a store, keeping the matchers of the few most recent dates."""

    def __init__(self, store: Store, cache: int = 8) -> None:
        self.store = store
        self._matchers: OrderedDict[date, tuple[int, DayMatcher]] = OrderedDict()
        self._size = cache
        self._lock = threading.Lock()  # the web app calls it from worker threads

    def _matcher(self, listing: Listing) -> DayMatcher:
        hit = self._matchers.get(listing.date)
        if hit is not None and hit[0] == len(listing.papers):
            self._matchers.move_to_end(listing.date)
            return hit[1]
        matcher = DayMatcher(listing.papers)
        self._matchers[listing.date] = (len(listing.papers), matcher)
        while len(self._matchers) > self._size:
            self._matchers.popitem(last=False)
        return matcher

    def preview(
        self, keywords: Sequence[str], exclude: Sequence[str] = (), days: int = 1
    ) -> list[DayPreview]:
        """The matches of the ``days`` most recent stored listings, newest first; a paper
        shown for a newer date is not shown again for an older one. Raises QueryError (a
        field that does not exist included, as when subscribing)."""
        for query in (*keywords, *exclude):
            validate(query)
        with self._lock:  # matchers keep caches that are not thread-safe
            return self._preview(keywords, exclude, days)

    def _preview(
        self, keywords: Sequence[str], exclude: Sequence[str], days: int
    ) -> list[DayPreview]:
        out: list[DayPreview] = []
        seen: set[str] = set()
        for day in self.store.papers.recent_dates(days):
            listing = self.store.papers.listing(day)
            if listing is None:
                continue
            found = self._matcher(listing).select(tuple(keywords), tuple(exclude))
            fresh = tuple(m for m in found if m.paper.key not in seen)
            seen.update(m.paper.key for m in fresh)
            out.append(DayPreview(day, len(listing.papers), fresh))
        return out
