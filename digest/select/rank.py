"""Ranking matched papers: by score (the :data:`WEIGHTS` of the distinct (term, field) pairs
that count), then upvotes, then title; over bitmasks with one bit per paper, in rank order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from types import MappingProxyType
from typing import TypeAlias

from digest.models import Paper
from digest.words import fold

#: What one contributing term scores per field it matched in.
WEIGHTS: Mapping[str, float] = MappingProxyType({"title": 3.0, "abstract": 1.0, "author": 2.0})

# Which papers each (leaf, field) pair counts for in a query: a bitmask over the papers'
# ranks (bit r: the paper ranked r by upvotes and title).
Pairs: TypeAlias = dict[tuple[int, str], int]


_WEIGHT = dict(WEIGHTS).__getitem__
_SECOND = itemgetter(1)
#: Scores are summed as integers, bit by bit over all papers at once (see :func:`levels`).
_INT_WEIGHTS = {field: int(w) for field, w in WEIGHTS.items()}
assert all(_INT_WEIGHTS[f] == w for f, w in WEIGHTS.items()), "weights must be integers"


class Ranking:
    """The papers of a day in rank order (upvotes, then title): bit ``r`` of a mask stands
    for the paper ranked ``r``; a paper's number is its position in the day's list."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        # Ties in score go to upvotes (descending), then title, for a stable order.
        order = sorted(
            range(len(papers)),
            key=lambda n: (-papers[n].upvotes, fold(papers[n].title), papers[n].title, n),
        )
        self.rank = [0] * len(order)
        for rank, number in enumerate(order):
            self.rank[number] = rank
        self.by_rank = tuple(order)
        self.bit = [1 << r for r in self.rank]
        self.all = (1 << len(order)) - 1
        self._bytes = (len(order) + 7) // 8
        self._by_byte: dict[int, tuple[int, ...]] = {}

    def order(self, pairs: Pairs, mask: int) -> tuple[int, ...]:
        """The papers of ``mask``, best first: by score (from ``pairs``), then rank."""
        out: list[int] = []
        for level in levels(pairs, mask):
            out += self.numbers_of(level)
        return tuple(out)

    def numbers_of(self, mask: int) -> tuple[int, ...]:
        """The paper numbers of the bits set in ``mask``, in rank order."""
        out: list[int] = []
        table = self._by_byte
        for i, byte in enumerate(mask.to_bytes(self._bytes, "little")):
            if byte:
                key = i << 8 | byte
                numbers = table.get(key)
                if numbers is None:
                    by_rank = self.by_rank
                    numbers = table[key] = tuple(
                        by_rank[i * 8 + b] for b in range(8) if byte >> b & 1
                    )
                out += numbers
        return tuple(out)


def levels(pairs: Pairs, mask: int) -> list[int]:
    """The papers of ``mask`` grouped by score, highest first: each paper scores the
    :data:`WEIGHTS` of the pairs whose bits it has. The sums are computed for all papers
    at once, one bit plane at a time (a ripple-carry adder over bitmasks)."""
    planes: list[int] = []  # bit b of every paper's score, least significant first
    for (_, field), bits in pairs.items():
        bits &= mask
        weight = _INT_WEIGHTS[field]
        plane = 0
        while weight and bits:
            if weight & 1:
                carry, i = bits, plane
                while carry:
                    while len(planes) <= i:
                        planes.append(0)
                    current = planes[i]
                    planes[i] = current ^ carry
                    carry &= current
                    i += 1
            weight >>= 1
            plane += 1
    groups = [mask]
    for plane_bits in reversed(planes):  # most significant first: higher scores first
        split: list[int] = []
        for group in groups:
            high = group & plane_bits
            if high:
                split.append(high)
            low = group & ~plane_bits
            if low:
                split.append(low)
        groups = split
    return groups


def score_of(scored: Iterable[tuple[int, str]]) -> float:
    """What a paper scores for these distinct ``(term, field)`` pairs."""
    return sum(map(_WEIGHT, map(_SECOND, scored)))  # C-level loops: a hot spot at 100k
