"""The reasons of a resumed digest (issue 17): a digest recorded as pending and sent by a later
run (after a crash, SIGKILL, a failed connection) shows each similarity pick's reason as the
run that planned it would have: ``Like "<the liked paper it is nearest to>" (NN% similar)``.

Nothing is kept for it with the pending digest (the sent-state stays a few bytes a pair,
issue 18): the reasons are worked out again from the stored model and the subscriber's
stored profile, as :func:`digest.select.blend.blend` worked them out, so a message re-sent
after a crash is the same message. Which papers were picks is told as the run told it: for a
subscriber with likes and no keywords every paper is one; with keywords, the papers their
keywords do not match. A subscriber whose likes were all removed in between gets their picks
back without a reason (as before this module).

Costs nothing when nobody likes anything (one count of the likes, as :class:`Ranking`);
otherwise the model is loaded once, profiles are read by batches of :data:`BATCH` pending
digests, and each paper's vector is computed once per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from digest.models import Match, Paper, Subscriber
from digest.run.ranking import Ranking

if TYPE_CHECKING:  # imported on first use, as in digest.run.ranking
    import numpy as np
    from numpy.typing import NDArray

    from digest.select.similar import Profile

#: Pending digests whose profiles are read at once (the run's batch of subscribers).
BATCH = 1000


class Reasons:
    """Similarity reasons for the pending digests of one run (see the module docstring)."""

    def __init__(self, ranking: Ranking) -> None:
        self.ranking = ranking
        self._profiles: dict[int, Profile] = {}
        self._vectors: dict[str, NDArray[np.float32]] = {}

    def prefetch(self, subscribers: Sequence[Subscriber]) -> None:
        """Read the profiles of these subscribers (the next batch of pending digests)."""
        if not self.ranking.active:
            return
        ids = list(dict.fromkeys(s.id for s in subscribers if s.id is not None))
        self._profiles = self.ranking.profiles(ids) if ids else {}

    def matches(
        self, sub: Subscriber, papers: Sequence[Paper], keyword: Mapping[str, Match]
    ) -> list[Match]:
        """``papers`` (a pending digest's, in its order) as matches: a keyword match keeps
        its words (``keyword``: the subscriber's matches of the day, by key), a pick gets
        its reason back; without a profile, as before (keyword match, else a bare one)."""
        profile = self._profiles.get(sub.id) if sub.id is not None else None
        if profile is None or not profile.has_likes:
            return [keyword.get(p.key) or Match(paper=p, score=0.0) for p in papers]
        picks_only = not sub.keywords  # as run.ranking.choose: likes, no keywords
        picked = [p for p in papers if picks_only or p.key not in keyword]
        explained = self._explain(profile, picked)
        return [explained.get(p.key) or keyword[p.key] for p in papers]

    def _explain(self, profile: Profile, papers: Sequence[Paper]) -> dict[str, Match]:
        """Each paper as a pick of ``profile``: its similarity and nearest liked title, as
        :func:`digest.select.blend.select_similar` gives them."""
        if not papers:
            return {}
        import numpy as np

        from digest.select.similar import text_of

        ranker = self.ranking.ranker()
        if ranker is None:  # no model (nothing stored): no reason to give
            return {p.key: Match(paper=p, score=0.0) for p in papers}
        missing = [p for p in {p.key: p for p in papers}.values() if p.key not in self._vectors]
        if missing:
            rows = ranker.vectors([text_of(p.title, p.abstract) for p in missing])
            self._vectors.update(zip((p.key for p in missing), rows, strict=True))
        vectors = np.stack([self._vectors[p.key] for p in papers])
        sims = np.round(vectors @ profile.centre, 4).tolist()
        nearest = np.argmax(profile.liked @ vectors.T, axis=0).tolist()
        titles = profile.titles
        return {
            p.key: Match(p, score=sim, like=titles[near], similarity=min(1.0, max(0.0, sim)))
            for p, sim, near in zip(papers, sims, nearest, strict=True)
        }
