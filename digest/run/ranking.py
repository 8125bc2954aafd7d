"""Similarity ranking in a run (issue 17): the model once per run, each batch's profiles, and
each subscriber's papers blended from keyword matches and similarity picks.

A run makes one :class:`Ranking` (a worker makes its own). It costs nothing while nobody
likes or dislikes anything: one count of the likes when made, and subscribers without likes
get :meth:`DayMatcher.choose` exactly as before. Otherwise, on first use it loads the stored
model (:meth:`Profiles.ranker` refits it first when the rule of :mod:`digest.store.profiles`
says so; the parent of worker processes does that before they start, see :func:`prepare`),
computes each pool's vectors once, and reads each batch's profiles with
:meth:`Profiles.current` (rebuilt and stored only for those whose likes changed).

``write=False`` (the dry run, ``digest preview``) changes nothing in the database: a
missing model is fitted in memory on the papers at hand, a stale profile is built in memory.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence, Set
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from digest.errors import StateError
from digest.models import Match, Paper, Subscriber
from digest.select import DayMatcher
from digest.store import Store

if TYPE_CHECKING:  # imported on first use (numpy and threadpoolctl with them, ~17 MB a
    # process): a run where nobody likes anything, and each of its workers, never loads them
    import numpy as np
    from numpy.typing import NDArray
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    from digest.select.similar import Day, Profile, Ranker

log = logging.getLogger("digest.pipeline")


def prepare(store: Store, now: datetime) -> None:
    """Refit the stored model now if it is missing or stale and someone likes anything:
    done once by a run's parent before its worker processes read the model."""
    if store.likes.counts():
        try:
            store.profiles.ranker(now)
        except StateError as exc:  # no paper with words yet: no ranking this run
            log.warning("similarity model not fitted: %s", exc)


def _key(paper: Paper) -> str:
    return paper.key


def _texts(papers: Sequence[Paper]) -> list[str]:
    """The ranker's text of each paper."""
    from digest.select.similar import text_of

    return [text_of(p.title, p.abstract) for p in papers]


class Ranking:
    """One run's similarity ranking over ``store`` (see the module docstring)."""

    def __init__(
        self, store: Store, now: datetime, *, write: bool = True, unstored: Sequence[Paper] = ()
    ) -> None:
        self.store = store
        self.now = now
        self.write = write
        # a dry run's papers not stored yet: fitted on as the real run would after storing
        # them (first_seen now, then by key), so both runs rank alike
        self._unstored = _texts(sorted(unstored, key=_key)) if unstored else []
        self.active = bool(store.likes.counts())
        self._ranker: Ranker | None = None
        self._loaded = False
        self._days: dict[int, tuple[DayMatcher, Day]] = {}

    def ranker(self, papers: Sequence[Paper] = ()) -> Ranker | None:
        """The model, loaded (or refitted: stored only when writing) once; with no paper
        stored, fitted in memory on ``papers``. None when nothing can be ranked."""
        if not self._loaded:
            self._loaded = True
            try:
                self._ranker = self.store.profiles.ranker(
                    self.now, save=self.write, unstored=self._unstored
                )
            except StateError as exc:
                log.warning("no similarity ranking: %s", exc)
        if self._ranker is None and papers:  # none stored (a preview's own papers)
            from digest.select.similar import TfidfRanker

            texts = _texts(papers)
            try:
                self._ranker = TfidfRanker.fit(texts, version=0)
            except StateError as exc:
                log.warning("no similarity ranking: %s", exc)
        return self._ranker

    def day(self, matcher: DayMatcher) -> Day | None:
        """The vectors of ``matcher``'s papers, computed once per matcher."""
        hit = self._days.get(id(matcher))
        if hit is not None and hit[0] is matcher:
            return hit[1]
        papers = [indexed.paper for indexed in matcher.papers]
        ranker = self.ranker(papers)
        if ranker is None:
            return None
        from digest.select.similar import Day

        day = Day(papers, ranker.vectors(_texts(papers)))
        self._days[id(matcher)] = (matcher, day)
        return day

    def profiles(self, subscriber_ids: Sequence[int]) -> dict[int, Profile]:
        """The profiles of those of these subscribers who like or dislike anything."""
        if not self.active or not subscriber_ids:
            return {}
        ranker = self.ranker()
        if ranker is None:
            return {}
        from digest.select.similar import TfidfRanker, build_profile

        texts_for = self.store.likes.texts_for
        if self.write and isinstance(ranker, TfidfRanker):
            return self.store.profiles.current(subscriber_ids, ranker, texts_for, self.now)
        markers = self.store.profiles.likes_markers(subscriber_ids)
        stored = self.store.profiles.get_many(list(markers))
        made: dict[int, Profile] = {}
        stale = [
            sid
            for sid in markers
            if sid not in stored
            or stored[sid].version != ranker.version
            or stored[sid].likes_hash != markers[sid][0]
        ]
        texts = texts_for(stale) if stale else {}
        for sid in markers:
            if sid in stale:
                made[sid] = build_profile(ranker, texts.get(sid, ()), markers[sid][0])
            else:
                made[sid] = stored[sid]
        return made


@functools.cache
def _blas() -> ThreadpoolController:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread inside: a batch's product (1,000 profiles x 128 x 2,000 papers)
    is too small for a second thread to gain much, and on a busy machine OpenBLAS's waiting
    thread spins: with two, the product took 3-4x the CPU seconds (bench/ranking.py)."""
    with _blas().limit(limits=1, user_api="blas"):
        yield


class Ranked:
    """A batch's profiles and their similarities to one pool's papers (one product)."""

    def __init__(self, matcher: DayMatcher, day: Day, profiles: dict[int, Profile]) -> None:
        self.matcher, self.day, self.profiles = matcher, day, profiles
        from digest.select.blend import similarities

        self._row = {sid: n for n, sid in enumerate(profiles)}
        with one_blas_thread():
            self._scores = similarities(list(profiles.values()), day)

    def blend(
        self,
        subscriber_id: int,
        keyword: Sequence[Match],
        *,
        has_keywords: bool,
        threshold: float,
        cap: int,
        exclude_keys: Set[str] = frozenset(),
    ) -> list[Match]:
        """:func:`blend` for this subscriber (who must have a profile here) with their row
        of the batch's similarities."""
        from digest.select.blend import blend

        profile, scores = self.profiles[subscriber_id], self._scores[self._row[subscriber_id]]
        return blend(
            keyword,
            profile,
            self.day,
            has_keywords=has_keywords,
            threshold=threshold,
            cap=cap,
            exclude_keys=exclude_keys,
            scores=scores,
        )

    def __contains__(self, subscriber_id: object) -> bool:
        return subscriber_id in self._row

    def choose(
        self, sub: Subscriber, seen: set[str] | frozenset[str], cap: int, threshold: float
    ) -> tuple[list[Match], list[Match]]:
        """``sub``'s papers (who must have a profile here): see :func:`choose`."""
        assert sub.id is not None
        profile, scores = self.profiles[sub.id], self._scores[self._row[sub.id]]
        return choose(self.matcher, self.day, sub, profile, seen, cap, threshold, scores)

    def picks(
        self, sub: Subscriber, skip: set[str] | frozenset[str], cap: int, threshold: float
    ) -> list[Match]:
        """``sub``'s similarity picks only (above ``threshold``, best first, at most
        ``cap``, none of ``skip``, nor liked, nor matching their exclude queries)."""
        assert sub.id is not None
        profile, scores = self.profiles[sub.id], self._scores[self._row[sub.id]]
        if sub.exclude:
            skip = set(skip) | self.matcher.keys(sub.exclude)
        from digest.select.blend import select_similar

        return select_similar(profile, self.day, skip, threshold, cap, scores)


def ranked(ranking: Ranking, matcher: DayMatcher, subscriber_ids: Sequence[int]) -> Ranked | None:
    """The ranking of these subscribers over ``matcher``'s papers; None when none of them
    likes or dislikes anything (they get :meth:`DayMatcher.choose` as they always did)."""
    if not ranking.active:
        return None
    profiles = ranking.profiles(subscriber_ids)
    if not profiles:
        return None
    day = ranking.day(matcher)
    return None if day is None else Ranked(matcher, day, profiles)


def threshold_of(sub: Subscriber, default: float) -> float:
    """The similarity a pick needs for ``sub``: theirs, else the config's."""
    return default if sub.like_threshold is None else sub.like_threshold


def choose(
    matcher: DayMatcher,
    day: Day,
    sub: Subscriber,
    profile: Profile,
    seen: set[str] | frozenset[str],
    cap: int,
    threshold: float,
    scores: NDArray[np.float32] | None = None,
) -> tuple[list[Match], list[Match]]:
    """``sub``'s papers of the day for their ``profile`` (:func:`blend`), split at ``cap``
    as :meth:`DayMatcher.choose` splits: keyword matches first, by similarity, then picks
    above ``threshold``; without keywords the picks only. ``seen``: never chosen."""
    from digest.select.blend import blend

    # Without keywords, likes bring picks only: every paper need not be listed first.
    picks_only = not sub.keywords and profile.has_likes
    keyword = [] if picks_only else matcher.select(sub.keywords, sub.exclude)
    skip = set(seen)
    if sub.exclude:  # the picks honour exclude queries too
        skip |= matcher.keys(sub.exclude)
    chosen = blend(
        keyword,
        profile,
        day,
        has_keywords=bool(sub.keywords),
        threshold=threshold,
        cap=cap,
        exclude_keys=skip,
        scores=scores,
    )
    return chosen[:cap], chosen[cap:]
