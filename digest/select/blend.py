"""Choosing by similarity: a subscriber's picks of a day, and their blend with keyword matches.

Pure functions over a :class:`~digest.select.similar.Day` (the day's vectors, once) and a
subscriber's :class:`~digest.select.similar.Profile`. For many subscribers, compute their
similarities together with :func:`similarities` (one matrix product) and pass each row.

The rule (issue 17): without a profile, the keyword matches as they are; with keywords,
the keyword matches first, ordered by similarity, then picks above the threshold up to the
cap; without keywords, the picks above the threshold, best first, at most the cap. Liked and
disliked papers are never chosen; dislikes lower the similarity of papers like them.
"""

from __future__ import annotations

from collections.abc import Sequence, Set

import numpy as np
from numpy.typing import NDArray

from digest.models import Match, Paper
from digest.select.similar import Day, Profile

#: The similarity a pick needs when the caller gives none: the value bench/relevance.py
#: recommends for ``like_threshold`` (above it, 56% of the picks were on the reader's topics).
DEFAULT_THRESHOLD = 0.35


def similarities(profiles: Sequence[Profile], day: Day) -> NDArray[np.float32]:
    """Each profile's similarity to each paper of ``day``: rows follow ``profiles``,
    columns ``day.papers``; cosines in -1..1."""
    if not profiles or not day.papers:
        return np.zeros((len(profiles), len(day.papers)), np.float32)
    centres = np.stack([p.centre for p in profiles])
    return np.asarray(centres @ day.vectors.T, dtype=np.float32)


def select_similar(
    profile: Profile,
    day: Day,
    exclude_keys: Set[str] = frozenset(),
    threshold: float = DEFAULT_THRESHOLD,
    cap: int = 10,
    scores: NDArray[np.float32] | None = None,
) -> list[Match]:
    """The day's papers at least ``threshold`` similar to ``profile``, best first, at most
    ``cap``, none whose key is in ``exclude_keys`` or liked/disliked; each with its reason
    (:attr:`Match.like`, :attr:`Match.similarity`). ``scores``: this profile's row of
    :func:`similarities`, when computed for many at once.

    >>> select_similar(profile, ranker.day(papers), delivered, 0.2, 10)  # doctest: +SKIP
    [Match(paper=..., score=0.41, like='Graph attention networks', similarity=0.41)]
    """
    if not profile.has_likes or cap <= 0 or not day.papers:
        return []
    row = similarities([profile], day)[0] if scores is None else scores
    return _picks(profile, day, row, _skip(profile, exclude_keys), threshold, cap)


def blend(
    keyword: Sequence[Match],
    profile: Profile | None,
    day: Day,
    *,
    has_keywords: bool,
    threshold: float = DEFAULT_THRESHOLD,
    cap: int = 10,
    exclude_keys: Set[str] = frozenset(),
    scores: NDArray[np.float32] | None = None,
) -> list[Match]:
    """A subscriber's papers of ``day``, best first, to split at ``cap`` (diff.select).

    ``keyword``: every keyword match of the day in today's order (``DayMatcher.select``,
    all of them: with a profile they are reordered, so each needs its highlights);
    ``profile``: None when they like or dislike nothing (the result is ``keyword``
    unchanged); ``has_keywords``: whether they have keyword queries (without, ``keyword``
    is every paper, and only picks are kept); ``exclude_keys``: what they must not get (the
    papers already delivered, and those their exclude queries match:
    ``DayMatcher.keys(sub.exclude)``). Keyword matches keep their reason; picks carry
    ``like`` and ``similarity``.
    """
    if profile is None:
        return list(keyword)
    skip = _skip(profile, exclude_keys)
    row = similarities([profile], day)[0] if scores is None else scores
    if not has_keywords and profile.has_likes:
        return _picks(profile, day, row, skip, threshold, cap)
    chosen = _reorder(keyword, skip, day, row)
    if not has_keywords:
        return chosen
    room = cap - len(chosen)
    if room > 0 and profile.has_likes:
        taken = skip | {m.paper.key for m in chosen}
        chosen += _picks(profile, day, row, taken, threshold, room)
    return chosen


def _skip(profile: Profile, exclude_keys: Set[str]) -> Set[str]:
    return profile.keys | exclude_keys if exclude_keys else profile.keys


def _reorder(
    matches: Sequence[Match], skip: Set[str], day: Day, row: NDArray[np.float32]
) -> list[Match]:
    """``matches`` without those in ``skip``, by similarity, highest first; ties (and
    papers not of ``day``) keep their order. Dislikes make the papers like them sink."""
    keys = [m.paper.key for m in matches]
    if skip.isdisjoint(keys):
        kept = list(matches)
    else:
        kept = [m for m, key in zip(matches, keys, strict=True) if key not in skip]
        keys = [m.paper.key for m in kept]
    number = day.number
    where = np.fromiter([number.get(key, -1) for key in keys], np.intp, len(keys))
    sims = np.where(where >= 0, row[where], 0.0)
    return [kept[i] for i in np.argsort(-sims, kind="stable").tolist()]


def _picks(
    profile: Profile,
    day: Day,
    row: NDArray[np.float32],
    skip: Set[str],
    threshold: float,
    cap: int,
) -> list[Match]:
    if cap <= 0:
        return []
    papers = day.papers
    # The best few first (the skipped ones among them are few: a day's liked or delivered
    # papers): those at or above both the threshold and the few-th best score (found by a
    # partition of the scores, cheaper than one of their numbers); the full order of those
    # above the threshold only if they do not fill the cap.
    size = len(row)
    few = min(size, cap + 16)
    floor = threshold
    if few < size:
        floor = max(floor, float(np.partition(row, size - few)[size - few]))
    best = _ranked(row, np.flatnonzero(row >= floor))
    chosen = _first(best, papers, skip, cap)
    if len(chosen) < cap and len(best) >= few and few < size:  # skips left room: go on
        chosen = _first(_ranked(row, np.flatnonzero(row >= threshold)), papers, skip, cap)
    if not chosen:
        return []
    # The reason of each pick: the liked paper nearest to it (liked x picks).
    nearest = np.argmax(profile.liked @ day.vectors[chosen].T, axis=0).tolist()
    sims = np.round(row[chosen], 4).tolist()
    titles = profile.titles
    return [
        Match(papers[n], score=sim, like=titles[near], similarity=min(1.0, max(0.0, sim)))
        for n, near, sim in zip(chosen, nearest, sims, strict=True)
    ]


def _first(numbers: list[int], papers: Sequence[Paper], skip: Set[str], cap: int) -> list[int]:
    """The first ``cap`` of ``numbers`` whose paper's key is not in ``skip``."""
    chosen: list[int] = []
    for n in numbers:
        if papers[n].key not in skip:
            chosen.append(n)
            if len(chosen) == cap:
                break
    return chosen


def _ranked(row: NDArray[np.float32], numbers: NDArray[np.intp]) -> list[int]:
    """``numbers`` (ascending), highest in ``row`` first (ties: lower first)."""
    ranked: list[int] = numbers[np.argsort(-row[numbers], kind="stable")].tolist()
    return ranked
