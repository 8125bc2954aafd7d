"""What a query would have brought: the papers of the last stored listings it matches; and
what likes would have brought (:meth:`Previewer.preview_likes`), ranked by similarity.

Reads stored listings only and writes nothing; ``digest preview`` and the subscribe page's
live preview both use it. Matchers are cached per listing date, so a page typing query
after query stays cheap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from digest.errors import StateError
from digest.models import Listing, Match, Paper, Subscriber
from digest.run.ranking import Ranking, choose
from digest.select import DayMatcher, validate
from digest.select.similar import Profile, build_profile
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

    def preview_likes(
        self,
        sub: Subscriber,
        profile: Profile | None,
        ranking: Ranking,
        *,
        days: int,
        cap: int,
        threshold: float,
    ) -> list[DayPreview]:
        """What ``sub`` (their keywords, exclude queries) with ``profile`` (their likes)
        would have got from each of the ``days`` most recent stored listings, newest first,
        as a digest chooses (:func:`digest.run.ranking.choose`; without a profile, the
        keyword matches); a paper shown for a newer date is not shown again."""
        for query in (*sub.keywords, *sub.exclude):
            validate(query)
        out: list[DayPreview] = []
        seen: set[str] = set()
        with self._lock:
            for day in self.store.papers.recent_dates(days):
                listing = self.store.papers.listing(day)
                if listing is None:
                    continue
                matcher = self._matcher(listing)
                vectors = ranking.day(matcher) if profile is not None else None
                if profile is None or vectors is None:
                    found = [
                        m
                        for m in matcher.select(sub.keywords, sub.exclude)
                        if m.paper.key not in seen
                    ]
                else:
                    shown, more = choose(matcher, vectors, sub, profile, seen, cap, threshold)
                    found = shown + more
                seen.update(m.paper.key for m in found)
                out.append(DayPreview(day, len(listing.papers), tuple(found)))
        return out


@dataclass(frozen=True)
class _Liked:
    kind: str
    key: str
    title: str
    abstract: str


def liked_profile(
    store: Store, ranking: Ranking, ids: Sequence[str], days: int
) -> tuple[Profile | None, list[str]]:
    """The profile of liking the stored papers ``ids`` name (arXiv ids, links, DOIs,
    keys), made in memory; and the ids that name no stored paper."""
    keys = store.papers.resolve(ids)
    unknown = [i for i in ids if i not in keys]
    papers = store.papers.papers_by_key(set(keys.values()))
    liked = [
        _Liked("like", p.key, p.title, p.abstract)
        for p in (papers[k] for k in dict.fromkeys(keys.values()) if k in papers)
    ]
    if not liked:
        return None, unknown
    ranker = ranking.ranker()
    if ranker is None:  # no model stored: fitted on the papers previewed
        recent = [p for d in store.papers.recent_dates(days) for p in _papers(store, d)]
        ranker = ranking.ranker(recent or list(papers.values()))
    if ranker is None:
        raise StateError("no similarity model: no stored paper has words to rank by")
    return build_profile(ranker, liked), unknown


def subscriber_profile(ranking: Ranking, sub: Subscriber) -> Profile | None:
    """``sub``'s profile as their next digest would use it (built in memory when stale)."""
    if sub.id is None:
        return None
    return ranking.profiles([sub.id]).get(sub.id)


def read_only_ranking(store: Store, now: datetime) -> Ranking:
    """A ranking that writes nothing (a model refitted, a profile rebuilt: in memory)."""
    return Ranking(store, now, write=False)


def _papers(store: Store, day: date) -> tuple[Paper, ...]:
    listing = store.papers.listing(day)
    return listing.papers if listing is not None else ()
