"""Matching the day's papers against keyword queries: select, rank and highlight.

A :class:`DayMatcher` indexes the day's papers once (an inverted index of folded words),
evaluates each distinct query once over all of them, and caches the result, so choosing a
subscriber's papers only combines cached per-query results.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from operator import itemgetter
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
# A leaf is named by a small number (the same for equal leaves of any query of the day):
# sets of (leaf, field) pairs then hash at C speed.
_Hits: TypeAlias = dict[int, list[tuple[int, int, int, int]]]
Scored: TypeAlias = frozenset[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class PaperHit:
    """How one query (or a subscriber's queries together) matched one paper.

    ``score`` sums :data:`WEIGHTS` over the distinct ``(term, field)`` pairs in ``scored``;
    ``marks`` are the matched stretches in paper order, from which ``terms`` and ``spans``.
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
            score=_score_of(scored),
            scored=scored,
            marks=ordered,
            terms=tuple(dict.fromkeys(map(_LAST, ordered))),
            spans=tuple(spans),
        )

    @staticmethod
    def merge(*hits: PaperHit) -> PaperHit:
        """One hit for a paper matched by several queries (distinct terms count once)."""
        return PaperHit.build(
            frozenset().union(*(h.scored for h in hits)), [m for h in hits for m in h.marks]
        )


_WEIGHT = dict(WEIGHTS).__getitem__
_SECOND = itemgetter(1)
_LAST = itemgetter(-1)
_MERGED_CACHE = 50_000
#: Query results kept at once: popular queries stay (least recently used go first), so
#: memory does not grow with the long tail of queries only one subscriber has.
_RESULT_CACHE = 8_192
_LEAF_CACHE = 16_384
_NO_HIT = PaperHit(0.0, frozenset(), (), (), ())


class QueryResult:
    """One query over every paper of a day.

    ``hits`` maps a paper's number (its position in :attr:`DayMatcher.papers`) to the leaf
    hits that make the query true there; ``scored`` to its distinct ``(term, field)`` pairs
    and ``order`` to its sort key (see :func:`_sort_key`). The highlights (a
    :class:`PaperHit` per paper, and :class:`Match` objects) are built only for the papers
    that are asked for: most matches of a day are never shown to anyone.
    """

    __slots__ = (
        "_built",
        "_matcher",
        "_matches",
        "_ranked",
        "hits",
        "numbers",
        "order",
        "query",
        "scored",
    )

    def __init__(
        self,
        matcher: DayMatcher,
        query: str,
        hits: _Hits,
        scored: dict[int, Scored],
        order: dict[int, float],
    ) -> None:
        self._matcher = matcher
        self.query = query
        self.hits = hits
        self.scored = scored
        self.order = order
        #: Paper numbers, best first.
        self.numbers: list[int] = sorted(order, key=order.__getitem__)
        self._built: dict[int, PaperHit] = {}
        self._matches: dict[int, Match] = {}
        self._ranked: dict[int, Match] | None = None

    def hit(self, number: int) -> PaperHit:
        """How the query matched paper ``number`` (which must be in :attr:`hits`)."""
        built = self._built.get(number)
        if built is None:
            built = self._built[number] = self._matcher._build(number, self.hits[number])
        return built

    def match(self, number: int) -> Match:
        """Paper ``number`` with this query's highlights (built once)."""
        ranked = self._ranked
        if ranked is not None:
            return ranked[number]
        found = self._matches.get(number)
        if found is None:
            found = self._matches[number] = self._matcher._match(number, self.hit(number))
        return found

    @property
    def ranked(self) -> Mapping[int, Match]:
        """Every matching paper's :class:`Match`, best first (built on first use)."""
        if self._ranked is None:
            self._ranked = {n: self.match(n) for n in self.numbers}
            self._matches.clear()
        return self._ranked

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

    Each distinct query string is parsed and evaluated once; :meth:`select` and
    :meth:`choose` then only combine cached results with set and dict operations, so that
    a hundred thousand subscribers sharing popular queries stay cheap.
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
        self._by_rank = order
        self._everything = {n: Match(papers[n], 0.0) for n in order}
        self._results: OrderedDict[str, QueryResult] = OrderedDict()
        self._leaf_cache: OrderedDict[tuple[Leaf, frozenset[str]], _Hits] = OrderedDict()
        self._leaf_ids: dict[Leaf, int] = {}
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
        results, excluded = self._results_for(keywords, exclude)
        return [self._full(results, n) for n in self._ordered(results, excluded)]

    def choose(
        self,
        keywords: Sequence[str],
        exclude: Sequence[str] = (),
        skip: Set[str] = frozenset(),
        cap: int | None = None,
    ) -> tuple[list[Match], list[Match]]:
        """:meth:`select` without the papers whose key is in ``skip``, split at ``cap``:
        (the first ``cap``, with their highlights; the rest, with paper and score only).

        What a digest needs: only the papers it shows are highlighted.
        """
        results, excluded = self._results_for(keywords, exclude)
        numbers = self._ordered(results, excluded)
        if skip:
            papers = self.papers
            numbers = [n for n in numbers if papers[n].paper.key not in skip]
        cut = len(numbers) if cap is None else max(0, cap)
        shown = [self._full(results, n) for n in numbers[:cut]]
        everything = self._everything  # past the cap only the paper counts, not its score
        return shown, [everything[n] for n in numbers[cut:]]

    def keys(self, keywords: Sequence[str], exclude: Sequence[str] = ()) -> set[str]:
        """The keys of the papers :meth:`select` would give, without ranking or highlights."""
        results, excluded = self._results_for(keywords, exclude)
        if not results:
            numbers: Iterable[int] = range(len(self.papers))
        else:
            numbers = set().union(*(r.hits.keys() for r in results)) - excluded
            excluded = set()
        papers = self.papers
        return {papers[n].paper.key for n in numbers if n not in excluded}

    def _results_for(
        self, keywords: Sequence[str], exclude: Sequence[str]
    ) -> tuple[list[QueryResult], set[int]]:
        excluded: set[int] = set()
        for query in exclude:
            excluded.update(self.matches_query(query).hits)
        return [self.matches_query(q) for q in dict.fromkeys(keywords)], excluded

    def _ordered(self, results: list[QueryResult], excluded: set[int]) -> list[int]:
        """Paper numbers matching any result (all papers for none), best first."""
        if not results:
            numbers = self._by_rank
        elif len(results) == 1:
            numbers = results[0].numbers
        else:
            order: dict[int, float] = {}
            several: set[int] = set()
            for result in results:
                several.update(order.keys() & result.order.keys())
                order.update(result.order)
            for number in several:
                scored = frozenset().union(
                    *(r.scored[number] for r in results if number in r.scored)
                )
                order[number] = _sort_key(_score_of(scored), self._rank[number])
            numbers = sorted(order, key=order.__getitem__)
        if excluded and not excluded.isdisjoint(numbers):
            return [n for n in numbers if n not in excluded]
        return list(numbers)

    def _full(self, results: list[QueryResult], number: int) -> Match:
        """The highlighted :class:`Match` of paper ``number`` for these results."""
        if len(results) == 1:
            return results[0].match(number)
        if not results:
            return self._everything[number]
        having = [r for r in results if number in r.hits]
        if len(having) == 1:
            return having[0].match(number)
        key = (number, *(r.query for r in having))
        match = self._merged.get(key)
        if match is None:
            if len(self._merged) >= _MERGED_CACHE:
                self._merged.clear()
            merged = PaperHit.merge(*(r.hit(number) for r in having))
            match = self._merged[key] = self._match(number, merged)
        return match

    def _match(self, number: int, hit: PaperHit) -> Match:
        return Match(self.papers[number].paper, hit.score, hit.terms, hit.spans)

    def _build(self, number: int, found: list[tuple[int, int, int, int]]) -> PaperHit:
        if not found:
            return _NO_HIT
        scored: list[tuple[int, str]] = []
        marks: list[Mark] = []
        slots = self.papers[number].slots
        for leaf, slot_number, first, end in found:
            slot = slots[slot_number]
            start, stop = slot.starts[first], slot.ends[end - 1]
            text = " ".join(slot.text[start:stop].lower().split())
            scored.append((leaf, slot.field))
            marks.append((_FIELD_RANK[slot.field], slot.index, start, stop, text))
        return PaperHit.build(scored, marks)

    def _evaluate(self, query: str) -> QueryResult:
        hits = self._node(parse(query), DEFAULT_FIELDS)
        papers = self.papers
        rank = self._rank
        scored: dict[int, Scored] = {}
        order: dict[int, float] = {}
        for number, found in hits.items():
            slots = papers[number].slots
            pairs = frozenset((leaf, slots[slot].field) for leaf, slot, _, _ in found)
            scored[number] = pairs
            order[number] = _sort_key(_score_of(pairs), rank[number])
        return QueryResult(self, query, hits, scored, order)

    def _node(self, node: Node, fields: frozenset[str]) -> _Hits:
        """Paper number -> the positive leaf hits that make ``node`` true for that paper."""
        if isinstance(node, Field):
            return self._node(node.operand, frozenset({node.name}))
        if isinstance(node, Not):
            inner = self._node(node.operand, fields)
            return {n: [] for n in range(len(self.papers)) if n not in inner}
        if isinstance(node, And):
            # "a AND NOT b": take b's papers out of a's rather than build NOT b's complement.
            positive: list[Node] = [op for op in node.operands if not isinstance(op, Not)]
            negative = [op.operand for op in node.operands if isinstance(op, Not)]
            if not positive:
                positive, negative = list(node.operands), []
            parts = [self._node(op, fields) for op in positive]
            parts.sort(key=len)
            out: _Hits = {n: list(found) for n, found in parts[0].items()}
            for part in parts[1:]:
                out = {n: found + part[n] for n, found in out.items() if n in part}
            for op in negative:
                if not out:
                    break
                inner = self._node(op, fields)
                out = {n: found for n, found in out.items() if n not in inner}
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
        lid = self._leaf_ids.setdefault(leaf, len(self._leaf_ids))
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
                    out.setdefault(n, []).append((lid, slot_number, pos, pos + size))
        return out


def _score_of(scored: Iterable[tuple[int, str]]) -> float:
    """What a paper scores for these distinct ``(term, field)`` pairs."""
    return sum(map(_WEIGHT, map(_SECOND, scored)))  # C-level loops: a hot spot at 100k


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
