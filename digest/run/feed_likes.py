"""Private feeds of subscribers who like or dislike papers (issue 17): what their feed
holds when it is not the feed of their queries as it is (:meth:`FeedLikes.own`).

A private feed file is shared by every subscriber of the same queries
(:mod:`digest.run.publish`). A subscriber who likes or dislikes papers reads that file as
long as it suits them: no paper they liked or disliked among its papers, and no similarity
pick to add (a broad query leaves no room for picks, see below). Otherwise they get
:class:`Own` content: their keyword matches less every paper they liked or disliked (by any
of its identities), and their picks, each with its reason (:class:`~digest.compose.Picked`).
Its file is named by its content, so readers of the same content share one file.

What a feed adds by similarity is bounded as the digests are: on each listing date of the
feed, picks fill up to ``max_papers`` (the subscriber's, else ``mail.max_papers``) after
that date's keyword matches; without keywords, at most ``max_papers`` picks a date; at most
``feeds.private_max_entries`` in all. Reads only: the model and profiles as the run left
them (a stale profile is built in memory).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import compress, islice

from digest.compose import Picked
from digest.compose.views import percent
from digest.config import Config
from digest.models import Paper, Subscriber
from digest.run.ranking import Ranked, Ranking, ranked, threshold_of
from digest.select import DayMatcher
from digest.store import Store


class Matching:
    """The papers' matcher, and the papers each query (and each pair of query lists)
    matches, looked up once for all the feeds of a pass."""

    def __init__(self, matcher: DayMatcher) -> None:
        self.matcher = matcher
        # Each query's papers as the matcher's bitmask (~100 bytes for 500 papers; a set
        # of their keys took ~1.7 KB: 44 MB for the 26,500 queries of 100,000 subscribers).
        self._masks: dict[str, int] = {}
        self._bits: dict[str, int] = {}  # a paper's key -> its bit (its bits, if repeated)
        bit = matcher.ranking.bit
        for number, indexed in enumerate(matcher.papers):
            key = indexed.paper.key
            self._bits[key] = self._bits.get(key, 0) | bit[number]
        self._wanted: dict[tuple[tuple[str, ...], tuple[str, ...]], frozenset[str]] = {}
        self._entries: list[str] | None = None  # the keys of the feed set :meth:`chosen` saw
        self._entry_bits: list[int] = []

    def mask_of(self, query: str) -> int:
        """The papers ``query`` matches, as the matcher's bitmask; raises QueryError."""
        mask = self._masks.get(query)
        if mask is None:
            mask = self._masks[query] = self.matcher.matches_query(query).mask
        return mask

    def reasons(self, queries: Sequence[str], keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """For each of ``keys``, those of ``queries`` its paper matches (in their order)."""
        found = [(query, self.mask_of(query)) for query in queries]
        bits = self._bits
        return {key: tuple(q for q, mask in found if mask & bits[key]) for key in keys}

    def chosen(
        self, keywords: Sequence[str], exclude: Sequence[str], keys: list[str], limit: int | None
    ) -> list[int]:
        """The first ``limit`` (None: all) of ``keys`` (a feed's entries, newest first) whose
        papers match ``keywords`` (every paper when empty) and none of ``exclude``: what
        ``FeedSet.choose`` gives for :meth:`wanted`'s keys, without making that set."""
        if self._entries is not keys:  # each entry's bits, once per feed set
            self._entries, self._entry_bits = keys, [self._bits.get(k, 0) for k in keys]
        mask = self.mask(keywords, exclude)
        found = compress(range(len(keys)), map(mask.__and__, self._entry_bits))
        return list(islice(found, limit))

    def mask(self, keywords: Sequence[str], exclude: Sequence[str]) -> int:
        """The papers matching ``keywords`` (every paper when empty) and none of
        ``exclude``, as the matcher's bitmask."""
        mask = self.matcher.ranking.all
        if keywords:
            mask = 0
            for query in keywords:
                mask |= self.mask_of(query)
        for query in exclude:
            mask &= ~self.mask_of(query)
        return mask

    def wanted(self, keywords: Sequence[str], exclude: Sequence[str]) -> frozenset[str]:
        """The keys of the papers matching ``keywords`` (every paper when empty) and none
        of ``exclude``: the feed of these queries (by the queries' masks, as
        :meth:`chosen`)."""
        pair = (tuple(keywords), tuple(exclude))
        found = self._wanted.get(pair)
        if found is None:
            found = self._wanted[pair] = self.keys(keywords, exclude)
        return found

    def keys(self, keywords: Sequence[str], exclude: Sequence[str]) -> frozenset[str]:
        """:meth:`wanted`, not kept."""
        mask = self.mask(keywords, exclude)
        return frozenset(key for key, bits in self._bits.items() if bits & mask)


@dataclass(frozen=True, slots=True)
class Own:
    """A private feed that differs from the feed of its subscriber's queries: the keys of
    its papers, and among them the similarity picks with their reasons."""

    wanted: frozenset[str]
    picked: dict[str, Picked]


class FeedLikes:
    """The feed content of each subscriber who likes or dislikes papers, over the feed's
    papers (``entries``, newest first, as :func:`~digest.run.publish.recent_entries`)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        matching: Matching,
        entries: Sequence[tuple[date, Paper]],
        now: datetime,
        reader: int | None = None,
    ) -> None:
        self.config = config
        self.matching = matching
        self.ranking = Ranking(store, now, write=False)
        self.day_of: dict[str, date] = {}
        for day, paper in entries:  # newest first: a paper at its newest date
            self.day_of.setdefault(paper.key, day)
        # Who liked or disliked which of the feed's papers, by any of their identities: one
        # read from the papers' side, or (``reader``: one reader's feed) of theirs.
        self.active = self.ranking.active  # anyone (the reader) likes or dislikes anything
        self.hidden: dict[int, set[str]] = {}
        if self.active and reader is None:
            self.hidden = store.likes.liked_among(self.day_of)
        elif self.active and reader is not None:
            theirs = store.likes.keys_of([reader]).get(reader, set())
            self.active = bool(theirs)  # else no model is loaded for them
            self.hidden = {reader: theirs & self.day_of.keys()}

    def batch(self, subs: Sequence[Subscriber]) -> Ranked | None:
        """The ranking of those of ``subs`` with likes (None: none has any)."""
        if not self.active:
            return None
        ids = [s.id for s in subs if s.id is not None]
        return ranked(self.ranking, self.matching.matcher, ids)

    def own(self, sub: Subscriber, found: Ranked | None) -> Own | None:
        """``sub``'s feed content when it is not their queries' feed as it is (None)."""
        if sub.id is None:
            return None
        hidden = self.hidden.get(sub.id, set())
        likes = found is not None and sub.id in found and found.profiles[sub.id].has_likes
        if not hidden and not likes:
            return None
        keywords, exclude = sorted(set(sub.keywords)), sorted(set(sub.exclude))
        # Likes without keywords bring their picks only, not every paper.
        matched = self.matching.wanted(keywords, exclude) if keywords or not likes else None
        kept = frozenset() if matched is None else matched - hidden
        picked = self._picks(found, sub, kept, hidden) if likes and found is not None else {}
        if not picked and matched is not None and len(kept) == len(matched):
            return None  # nothing of theirs among the file's papers, nothing to add
        return Own(kept | frozenset(picked), picked)

    def _picks(
        self, found: Ranked, sub: Subscriber, kept: frozenset[str], hidden: set[str]
    ) -> dict[str, Picked]:
        """``sub``'s picks by paper key, best first, bounded per listing date (see the
        module's docstring); none of ``kept`` (matched already) nor ``hidden``."""
        per_day = sub.max_papers or self.config.mail.max_papers
        taken = Counter(self.day_of.get(key) for key in kept) if sub.keywords else Counter()
        days = set(self.day_of.values())
        if sub.keywords and all(taken[day] >= per_day for day in days):
            return {}  # the keyword matches fill every date: no room for picks
        limit = threshold_of(sub, self.config.mail.like_threshold)
        cap = self.config.feeds.private_max_entries
        skip = kept | hidden if hidden else kept
        picked: dict[str, Picked] = {}
        for m in found.picks(sub, skip, cap, limit):
            day = self.day_of.get(m.paper.key)
            if taken[day] < per_day:
                taken[day] += 1
                picked[m.paper.key] = Picked(m.like or "", percent(m.similarity))
        return picked
