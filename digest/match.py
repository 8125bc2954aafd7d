"""Matching the day's papers against keyword queries: select, rank and highlight.

A :class:`DayMatcher` indexes the day's papers once (an inverted index of folded words),
evaluates each distinct query once over all of them, and caches the result, so choosing a
subscriber's papers only combines cached per-query results.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeAlias

from digest.models import Match, Paper, Span
from digest.query import And, Field, Leaf, Node, Not, Or, Phrase, Prefix, Term, parse
from digest.words import fold, word_spans

#: What one contributing term scores per field it matched in.
WEIGHTS: Mapping[str, float] = MappingProxyType({"title": 3.0, "abstract": 1.0, "author": 2.0})
#: Where a term without a field looks.
DEFAULT_FIELDS = frozenset({"title", "abstract"})

_FIELD_RANK = {"title": 0, "abstract": 1, "author": 2}
_FIELDS_BY_RANK = {rank: field for field, rank in _FIELD_RANK.items()}


@dataclass(frozen=True, slots=True)
class Slot:
    """One searchable text of a paper: its title, its abstract or one author's name."""

    field: str
    index: int
    text: str
    words: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class IndexedPaper:
    """A paper with its folded words, computed once.

    ``postings`` maps each folded word to its ``(slot number, word position)`` pairs.
    """

    paper: Paper
    slots: tuple[Slot, ...]
    postings: Mapping[str, tuple[tuple[int, int], ...]]


def _slot(field: str, index: int, text: str) -> Slot:
    found = list(word_spans(text))
    return Slot(
        field,
        index,
        text,
        tuple(w for w, _, _ in found),
        tuple(s for _, s, _ in found),
        tuple(e for _, _, e in found),
    )


def index_paper(paper: Paper) -> IndexedPaper:
    """``paper`` with the folded words of its title, abstract and each author's name."""
    slots = [_slot("title", 0, paper.title), _slot("abstract", 0, paper.abstract)]
    slots += [_slot("author", i, name) for i, name in enumerate(paper.authors)]
    postings: dict[str, list[tuple[int, int]]] = {}
    for number, slot in enumerate(slots):
        for pos, word in enumerate(slot.words):
            postings.setdefault(word, []).append((number, pos))
    return IndexedPaper(paper, tuple(slots), {w: tuple(p) for w, p in postings.items()})


# One matched stretch: (field rank, author index, start, end, text as in the paper).
Mark: TypeAlias = tuple[int, int, int, int, str]
# Where a leaf matched: (slot number, first word, end word) per paper number.
_Hits: TypeAlias = dict[int, list[tuple[Leaf, int, int, int]]]


@dataclass(frozen=True, slots=True)
class PaperHit:
    """How one query (or a subscriber's queries together) matched one paper.

    ``score`` sums :data:`WEIGHTS` over the distinct ``(term, field)`` pairs in ``scored``;
    ``marks`` are the matched stretches in paper order, from which ``terms`` and ``spans``.
    """

    score: float
    scored: frozenset[tuple[Leaf, str]]
    marks: tuple[Mark, ...]
    terms: tuple[str, ...]
    spans: tuple[Span, ...]

    @classmethod
    def build(cls, scored: Iterable[tuple[Leaf, str]], marks: Iterable[Mark]) -> PaperHit:
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
            score=sum(WEIGHTS[field] for _, field in scored),
            scored=scored,
            marks=ordered,
            terms=tuple(dict.fromkeys(text for *_, text in ordered)),
            spans=tuple(spans),
        )

    @staticmethod
    def merge(*hits: PaperHit) -> PaperHit:
        """One hit for a paper matched by several queries (distinct terms count once)."""
        return PaperHit.build(
            frozenset().union(*(h.scored for h in hits)), [m for h in hits for m in h.marks]
        )


_MERGED_CACHE = 50_000
#: Query results kept at once: popular queries stay (least recently used go first), so
#: memory does not grow with the long tail of queries only one subscriber has.
_RESULT_CACHE = 4_096
_LEAF_CACHE = 16_384
_NO_HIT = PaperHit(0.0, frozenset(), (), (), ())


@dataclass(frozen=True, slots=True)
class QueryResult:
    """One query over every paper of a day.

    ``hits`` maps a paper's number (its position in :attr:`DayMatcher.papers`) to how it
    matched; ``ranked`` maps the same numbers to their :class:`Match`, best first.
    """

    query: str
    hits: Mapping[int, PaperHit]
    ranked: Mapping[int, Match]
    #: Sort key of each paper number (see :func:`_sort_key`).
    order: Mapping[int, float]

    @property
    def matches(self) -> tuple[Match, ...]:
        """The matching papers, best first."""
        return tuple(self.ranked.values())

    def __len__(self) -> int:
        return len(self.hits)

    def __contains__(self, number: object) -> bool:
        return number in self.hits


class DayMatcher:
    """The papers of one day, indexed once, matched against any number of queries.

    Each distinct query string is parsed and evaluated once; :meth:`select` then only
    combines cached results with set and dict operations, so that a hundred thousand
    subscribers sharing popular queries stay cheap.
    """

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers: tuple[IndexedPaper, ...] = tuple(index_paper(p) for p in papers)
        self._with: dict[str, list[int]] = {}
        for number, indexed in enumerate(self.papers):
            for word in indexed.postings:
                self._with.setdefault(word, []).append(number)
        self._vocab = sorted(self._with)
        # Ties in score go to upvotes (descending), then title, for a stable order.
        order = sorted(
            range(len(self.papers)),
            key=lambda n: (-papers[n].upvotes, fold(papers[n].title), papers[n].title, n),
        )
        self._rank = [0] * len(order)
        for rank, number in enumerate(order):
            self._rank[number] = rank
        self._everything = {n: Match(papers[n], 0.0) for n in order}
        self._results: OrderedDict[str, QueryResult] = OrderedDict()
        self._leaf_cache: OrderedDict[tuple[Leaf, frozenset[str]], _Hits] = OrderedDict()
        # Papers hit by several queries, merged once per (paper number, *queries).
        self._merged: dict[tuple[object, ...], Match] = {}

    def matches_query(self, query: str) -> QueryResult:
        """``query`` evaluated over all papers, cached by its text; raises QueryError."""
        result = self._results.get(query)
        if result is None:
            result = self._results[query] = self._evaluate(query)
            if len(self._results) > _RESULT_CACHE:
                self._results.popitem(last=False)
        else:
            self._results.move_to_end(query)
        return result

    def select(self, keywords: Sequence[str], exclude: Sequence[str] = ()) -> list[Match]:
        """The papers matching any of ``keywords`` (all when empty) and none of ``exclude``.

        Best first: by score, then upvotes, then title. Raises QueryError for a bad query.
        """
        excluded: set[int] = set()
        for query in exclude:
            excluded.update(self.matches_query(query).hits)
        distinct = list(dict.fromkeys(keywords))
        if len(distinct) > 1:
            return self._combine([self.matches_query(q) for q in distinct], excluded)
        ranked = self.matches_query(distinct[0]).ranked if distinct else self._everything
        if excluded.isdisjoint(ranked):
            return list(ranked.values())
        kept = dict(ranked)  # keeps the order; dict operations run at C speed
        for number in excluded & kept.keys():
            del kept[number]
        return list(kept.values())

    def _combine(self, results: list[QueryResult], excluded: set[int]) -> list[Match]:
        """The union of several queries' matches; papers hit by more than one are merged."""
        order: dict[int, float] = {}
        matches: dict[int, Match] = {}
        several: set[int] = set()
        for result in results:
            several.update(order.keys() & result.order.keys())
            order.update(result.order)
            matches.update(result.ranked)
        for number in several - excluded:
            hits = [(r.query, h) for r in results if (h := r.hits.get(number)) is not None]
            key = (number, *(q for q, _ in hits))
            match = self._merged.get(key)
            if match is None:
                if len(self._merged) >= _MERGED_CACHE:
                    self._merged.clear()
                merged = PaperHit.merge(*(h for _, h in hits))
                match = self._merged[key] = self._match(number, merged)
            order[number] = _sort_key(match.score, self._rank[number])
            matches[number] = match
        for number in excluded & order.keys():
            del order[number]
        return [matches[n] for n in sorted(order, key=order.__getitem__)]

    def _match(self, number: int, hit: PaperHit) -> Match:
        return Match(self.papers[number].paper, hit.score, hit.terms, hit.spans)

    def _evaluate(self, query: str) -> QueryResult:
        hits = self._node(parse(query), DEFAULT_FIELDS)
        built: dict[int, PaperHit] = {}
        for number, found in hits.items():
            if not found:
                built[number] = _NO_HIT
                continue
            scored: list[tuple[Leaf, str]] = []
            marks: list[Mark] = []
            for leaf, slot_number, first, end in found:
                slot = self.papers[number].slots[slot_number]
                start, stop = slot.starts[first], slot.ends[end - 1]
                text = " ".join(slot.text[start:stop].lower().split())
                scored.append((leaf, slot.field))
                marks.append((_FIELD_RANK[slot.field], slot.index, start, stop, text))
            built[number] = PaperHit.build(scored, marks)
        order = {n: _sort_key(hit.score, self._rank[n]) for n, hit in built.items()}
        ranked = {n: self._match(n, built[n]) for n in sorted(order, key=order.__getitem__)}
        return QueryResult(query, built, ranked, order)

    def _node(self, node: Node, fields: frozenset[str]) -> _Hits:
        """Paper number -> the positive leaf hits that make ``node`` true for that paper."""
        if isinstance(node, Field):
            return self._node(node.operand, frozenset({node.name}))
        if isinstance(node, Not):
            inner = self._node(node.operand, fields)
            return {n: [] for n in range(len(self.papers)) if n not in inner}
        if isinstance(node, And):
            parts = [self._node(op, fields) for op in node.operands]
            parts.sort(key=len)
            out: _Hits = {n: list(found) for n, found in parts[0].items()}
            for part in parts[1:]:
                out = {n: found + part[n] for n, found in out.items() if n in part}
            return out
        if isinstance(node, Or):
            out = {}
            for op in node.operands:
                for n, found in self._node(op, fields).items():
                    out.setdefault(n, []).extend(found)
            return out
        key = (node, fields)
        cached = self._leaf_cache.get(key)
        if cached is None:
            cached = self._leaf_cache[key] = self._leaf(node, fields)
            if len(self._leaf_cache) > _LEAF_CACHE:
                self._leaf_cache.popitem(last=False)
        else:
            self._leaf_cache.move_to_end(key)
        return cached

    def _words(self, last: Term | Prefix) -> list[str]:
        """The day's words that ``last`` matches (plural variants, or the prefix range)."""
        if isinstance(last, Prefix):
            out = []
            i = bisect_left(self._vocab, last.stem)
            while i < len(self._vocab) and self._vocab[i].startswith(last.stem):
                out.append(self._vocab[i])
                i += 1
            return out
        return [w for w in plural_variants(last.word) if w in self._with]

    def _leaf(self, leaf: Leaf, fields: frozenset[str]) -> _Hits:
        if isinstance(leaf, Phrase):
            head = list(leaf.words[:-1])
            tail: Term | Prefix = Prefix(leaf.words[-1]) if leaf.prefix else Term(leaf.words[-1])
        else:
            head, tail = [], leaf
        ends = self._words(tail)
        candidates = {n for w in ends for n in self._with[w]}
        for word in head:
            candidates.intersection_update(self._with.get(word, ()))
        out: _Hits = {}
        ending = set(ends)
        size = len(head) + 1
        for n in candidates:
            indexed = self.papers[n]
            first = head[0] if head else None
            starts = indexed.postings[first] if first else _positions(indexed, ends)
            for slot_number, pos in starts:
                slot = indexed.slots[slot_number]
                if slot.field not in fields:
                    continue
                span = slot.words[pos : pos + size]
                if len(span) == size and list(span[:-1]) == head and span[-1] in ending:
                    out.setdefault(n, []).append((leaf, slot_number, pos, pos + size))
        return out


def _sort_key(score: float, rank: int) -> float:
    """Best first: higher score, then lower rank (upvotes, title).

    One number sorts much faster than a tuple; scores are sums of a few :data:`WEIGHTS`,
    so they stay exact and apart by far more than the ranks (fewer than 2**20 papers).
    """
    return rank - score * 2.0**20


def _positions(indexed: IndexedPaper, found: Iterable[str]) -> list[tuple[int, int]]:
    return [p for w in found for p in indexed.postings.get(w, ())]


def plural_variants(word: str) -> list[str]:
    """The words a term ``word`` matches: itself and with ``s``/``es`` added or removed."""
    out = [word, word + "s", word + "es"]
    for suffix in ("s", "es"):
        if word.endswith(suffix) and len(word) > len(suffix):
            out.append(word[: -len(suffix)])
    return out


def match_paper(query: str, paper: Paper) -> Match | None:
    """``paper`` as matched by ``query``, or None when it does not match; raises QueryError."""
    found = DayMatcher([paper]).select([query])
    return found[0] if found else None
