"""The differ: which papers of a day's listing a subscriber has never been sent, and the cap.

Pure functions over plain data; the store supplies what was already delivered.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from digest.models import Match, Paper


def unseen(papers: Sequence[Paper], delivered: Set[str]) -> list[Paper]:
    """The papers whose key is not in ``delivered``, in listing order.

    >>> [p.key for p in unseen([Paper("1", "a"), Paper("2", "b")], {"1"})]
    ['2']
    """
    return [p for p in papers if p.key not in delivered]


@dataclass(frozen=True)
class Selection:
    """One subscriber's digest for a day: the papers shown and the ones summarised as more."""

    shown: tuple[Match, ...]
    more: tuple[Match, ...]

    @property
    def all(self) -> tuple[Match, ...]:
        return self.shown + self.more

    def __bool__(self) -> bool:
        return bool(self.shown)


def select(matches: Sequence[Match], delivered: Set[str], cap: int) -> Selection:
    """Drop already-delivered papers from ranked ``matches`` and split them at ``cap``.

    Papers past the cap count as delivered too: the subscriber chose the cap.
    """
    fresh = [m for m in matches if m.paper.key not in delivered]
    return Selection(shown=tuple(fresh[:cap]), more=tuple(fresh[cap:]))
