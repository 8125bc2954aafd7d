"""Private feeds of subscribers with likes (issue 17): their similarity picks among the
feed's papers, each with its reason (:class:`~digest.compose.Picked`).

A private feed file is shared by every subscriber of the same queries
(:mod:`digest.run.publish`); a subscriber who likes papers gets one of their own queries
and likes (:func:`feed_name`): their keyword matches as before, and the papers most like
what they like, above their threshold, at most ``feeds.private_max_entries``. Reads only:
the model and profiles as the run left them (a stale profile is built in memory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from digest.compose import Picked
from digest.compose.views import percent
from digest.config import Config
from digest.models import Subscriber
from digest.run.ranking import Ranked, Ranking, ranked, threshold_of
from digest.select import DayMatcher
from digest.store import Store


class FeedLikes:
    """The picks of each batch of subscribers over the feeds' papers (``matcher``)."""

    def __init__(self, config: Config, store: Store, matcher: DayMatcher, now: datetime) -> None:
        self.config = config
        self.matcher = matcher
        self.ranking = Ranking(store, now, write=False)

    def batch(self, subs: Sequence[Subscriber]) -> Ranked | None:
        """The ranking of those of ``subs`` with likes (None: none has any)."""
        ids = [s.id for s in subs if s.id is not None]
        return ranked(self.ranking, self.matcher, ids) if self.ranking.active else None

    def feed_of(
        self, sub: Subscriber, found: Ranked | None, signature: str
    ) -> tuple[str, dict[str, Picked] | None]:
        """The name of ``sub``'s shared feed file (``signature``: their queries'), and
        their picks (None: they like nothing, the feed of their queries is theirs)."""
        if found is None or sub.id not in found:
            return signature, None
        limit = threshold_of(sub, self.config.mail.like_threshold)
        return feed_name(signature, found, sub, limit), self.picks(found, sub)

    def picks(self, found: Ranked, sub: Subscriber) -> dict[str, Picked]:
        """``sub``'s picks by paper key (their profile must be in ``found``)."""
        limit = threshold_of(sub, self.config.mail.like_threshold)
        cap = self.config.feeds.private_max_entries
        return {
            m.paper.key: Picked(m.like or "", percent(m.similarity))
            for m in found.picks(sub, frozenset(), cap, limit)
        }


def feed_name(signature: str, found: Ranked, sub: Subscriber, threshold: float) -> str:
    """The shared file's name for ``sub``'s queries (``signature``) and likes: the
    queries' name, a dash, a hash of the likes (see :func:`digest.run.publish.follows`)."""
    assert sub.id is not None
    profile = found.profiles[sub.id]
    text = f"{profile.likes_hash}|{profile.version}|{threshold}"
    return f"{signature}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
