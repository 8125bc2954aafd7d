"""Highlights and reasons: for a paper and the (term, field) pairs that made it match, where
those words stand (the :class:`~digest.models.Span` to mark), which terms, and its score."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import TypeAlias, TypeVar, cast

from digest.models import Match, Span
from digest.select.index import IndexedPaper
from digest.select.rank import Pairs, score_of

_FIELD_RANK = {"title": 0, "abstract": 1, "author": 2}
_FIELDS_BY_RANK = {rank: field for field, rank in _FIELD_RANK.items()}
_LAST = itemgetter(-1)
T = TypeVar("T")
#: Marks kept (cleared when full): each is needed again only to highlight a new set of
#: pairs of its paper; 200,000 of them held ~13 MB of a worker at 100,000 bench subscribers.
_MARK_CACHE = 16_384
_HIT_CACHE = 100_000


# One matched stretch: (field rank, author index, start, end, text as in the paper).
Mark: TypeAlias = tuple[int, int, int, int, str]
# A leaf is named by a small number (the same for equal leaves of any query of the day):
# sets of (leaf, field) pairs then hash at C speed.
Scored: TypeAlias = frozenset[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class PaperHit:
    """How one query (or a subscriber's queries together) matched one paper.

    ``score`` sums :data:`~digest.select.rank.WEIGHTS` over the distinct ``(term, field)``
    pairs in ``scored``; ``marks`` are the matched stretches in paper order, from which
    ``terms`` and ``spans``.
    """

    score: float
    scored: Scored
    marks: tuple[Mark, ...]
    terms: tuple[str, ...]
    spans: tuple[Span, ...]

    @classmethod
    def build(cls, scored: Iterable[tuple[int, str]], marks: Iterable[Mark]) -> PaperHit:
        scored = frozenset(scored)
        ordered = tuple(sorted(set(marks)))
        spans: list[Span] = []
        for rank, index, start, end, _ in ordered:
            field = _FIELDS_BY_RANK[rank]
            last = spans[-1] if spans else None
            if last and (last.field, last.index) == (field, index) and start < last.end:
                spans.pop()  # overlapping stretches ("diffusion", "diffusion model") join
                start, end = last.start, max(end, last.end)
            spans.append(Span(field, start, end, index))
        return cls(
            score=score_of(scored),
            scored=scored,
            marks=ordered,
            terms=tuple(dict.fromkeys(map(_LAST, ordered))),
            spans=tuple(spans),
        )


#: Where a leaf (by number) occurs: paper number → (slot number, first word, end word).
Positions: TypeAlias = Callable[[int], Mapping[int, list[tuple[int, int, int]]]]


class Highlighter:
    """Builds the :class:`PaperHit` and highlighted :class:`Match` of a paper for a set of
    (leaf, field) pairs, once per paper and set (so the renderer sees the same object
    again). ``positions`` says where a leaf occurs; ``bit`` is each paper's rank bit."""

    def __init__(
        self, papers: tuple[IndexedPaper, ...], bit: list[int], positions: Positions
    ) -> None:
        self.papers = papers
        self._bit = bit
        self._positions = positions
        self._marks: dict[tuple[int, int], list[tuple[str, Mark]]] = {}
        # Only the Match is kept, not the PaperHit it came from (its marks, its pairs).
        self._hits: dict[tuple[int, Scored], Match] = {}
        # Equal spans, terms and sets of pairs of the kept matches are one object each: a
        # paper's ~100 sets of highlights at 100,000 bench subscribers repeat the same few
        # spans (~6 of 64 bytes each a match) and many papers share a set of pairs.
        self._same: dict[object, object] = {}

    def hit(self, number: int, results: Iterable[Pairs]) -> PaperHit:
        """How the pairs of ``results`` together matched paper ``number``: the pairs counting
        there and the stretches of those leaves in those fields (whatever queries they come
        from)."""
        return self._build(number, self._scored(number, results))

    def matched(self, number: int, results: Iterable[Pairs]) -> Match:
        """Paper ``number`` highlighted for the pairs of ``results`` together: one
        :class:`Match` object per paper and set of pairs (so the renderer sees the same
        object again)."""
        scored = self._scored(number, results)
        key = (number, scored)
        match = self._hits.get(key)
        if match is None:
            hit = self._build(number, scored)
            if len(self._hits) >= _HIT_CACHE:
                self._hits.clear()
                self._same.clear()
            once = self._once
            spans = once(tuple([once(span) for span in hit.spans]))
            paper = self.papers[number].paper
            match = Match(paper, hit.score, once(hit.terms), spans)
            self._hits[(number, once(scored))] = match
        return match

    def _once(self, value: T) -> T:
        """The object equal to ``value`` kept already, or ``value`` (kept from now on)."""
        return cast(T, self._same.setdefault(value, value))

    def _scored(self, number: int, results: Iterable[Pairs]) -> Scored:
        """The (leaf, field) pairs of ``results`` that count for paper ``number``."""
        bit = self._bit[number]
        return frozenset(pair for pairs in results for pair, bits in pairs.items() if bits & bit)

    def _build(self, number: int, scored: Scored) -> PaperHit:
        marks: list[Mark] = []
        for lid, field in scored:
            marks += [m for f, m in self._marks_of(lid, number) if f == field]
        return PaperHit.build(scored, marks)

    def _marks_of(self, lid: int, number: int) -> list[tuple[str, Mark]]:
        """Where leaf ``lid`` occurs in paper ``number``: (field, mark) pairs, made once."""
        found = self._marks.get((lid, number))
        if found is None:
            slots = self.papers[number].slots
            found = []
            for slot_number, first, end in self._positions(lid).get(number, ()):
                slot = slots[slot_number]
                start, stop = slot.starts[first], slot.ends[end - 1]
                text = " ".join(slot.text[start:stop].lower().split())
                found.append((slot.field, (_FIELD_RANK[slot.field], slot.index, start, stop, text)))
            if len(self._marks) >= _MARK_CACHE:
                self._marks.clear()
            self._marks[(lid, number)] = found
        return found
