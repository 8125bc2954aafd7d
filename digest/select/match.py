"""Matching the day's papers against keyword queries: select, then rank and highlight.

A :class:`DayMatcher` indexes the day's papers once (an inverted index of folded words),
evaluates each distinct query once over all of them, and caches the result, so choosing a
subscriber's papers only combines cached per-query results. Ranking is
:mod:`digest.select.rank`'s job, highlights :mod:`digest.select.highlight`'s.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from digest.models import Match, Paper
from digest.select.highlight import Highlighter, PaperHit
from digest.select.index import Common, IndexedPaper, index_paper
from digest.select.query import And, Field, Leaf, Node, Not, Or, Phrase, Prefix, Term, parse
from digest.select.rank import Pairs, Ranking

#: Where a term without a field looks.
DEFAULT_FIELDS = frozenset({"title", "abstract"})


_MERGED_CACHE = 50_000
#: Query results kept at once: popular queries stay (least recently used go first), so
#: memory does not grow with the long tail of queries only one subscriber has.
_RESULT_CACHE = 8_192
_LEAF_CACHE = 16_384
_ORDER_CACHE = 8_192
#: Where a leaf occurs in a paper: (slot number, first word, end word).
Stretch = tuple[int, int, int]


@dataclass(slots=True)
class _LeafData:
    """Where one leaf (term, prefix or phrase) occurs, in every field.

    ``positions`` maps a paper number to its ``(slot number, first word, end word)``
    stretches; ``fieldmask`` a field to the rank bitmask of the papers it occurs in there.
    """

    positions: dict[int, list[tuple[int, int, int]]]
    fieldmask: dict[str, int]


class QueryResult:
    """One query over every paper of a day.

    ``mask`` holds the matching papers as a bitmask over their ranks, ``pairs`` which
    ``(leaf, field)`` pairs count for which of them (what scores and highlights come from).
    The order (:attr:`numbers`) and the highlights (a :class:`Match` per paper) are built
    only when asked for: most matches of a day are never shown to anyone.
    """

    __slots__ = ("_matcher", "_matches", "_numbers", "_ranked", "mask", "pairs", "query")

    def __init__(self, matcher: DayMatcher, query: str, mask: int, pairs: Pairs) -> None:
        self._matcher = matcher
        self.query = query
        self.mask = mask
        self.pairs = pairs
        self._numbers: tuple[int, ...] | None = None
        self._matches: dict[int, Match] = {}
        self._ranked: dict[int, Match] | None = None

    @property
    def numbers(self) -> tuple[int, ...]:
        """The matching papers' numbers (positions in :attr:`DayMatcher.papers`), best
        first: by score, then upvotes, then title."""
        if self._numbers is None:
            self._numbers = self._matcher.ranking.order(self.pairs, self.mask)
        return self._numbers

    @property
    def hits(self) -> frozenset[int]:
        """The matching papers' numbers."""
        return frozenset(self._matcher.ranking.numbers_of(self.mask))

    def hit(self, number: int) -> PaperHit:
        """How the query matched paper ``number`` (which must match)."""
        return self._matcher.highlights.hit(number, (self.pairs,))

    def match(self, number: int) -> Match:
        """Paper ``number`` with this query's highlights (built once)."""
        ranked = self._ranked
        if ranked is not None:
            return ranked[number]
        found = self._matches.get(number)
        if found is None:
            found = self._matches[number] = self._matcher.highlights.matched(number, (self.pairs,))
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
        return self.mask.bit_count()

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int) or not 0 <= number < len(self._matcher.papers):
            return False
        return bool(self.mask >> self._matcher.ranking.rank[number] & 1)


class DayMatcher:
    """The papers of one day, indexed once, matched against any number of queries.

    Each distinct query string is parsed and evaluated once, as bitmasks over all papers
    (one bit per paper, in rank order: set operations and score sums run over every paper
    at once, at C speed); :meth:`select` and :meth:`choose` then only combine cached
    results, so that a hundred thousand subscribers sharing popular queries stay cheap.
    """

    def __init__(self, papers: Sequence[Paper]) -> None:
        common: Common = {}  # equal words and positions shared by the papers
        self.papers: tuple[IndexedPaper, ...] = tuple(index_paper(p, common) for p in papers)
        # Equal stretches of all leaves, one object each (see :meth:`_find`).
        self._stretches: dict[Stretch, Stretch] = {}
        self._with: dict[str, list[int]] = {}
        for number, indexed in enumerate(self.papers):
            for word in indexed.postings:
                self._with.setdefault(word, []).append(number)
        self._vocab = sorted(self._with)
        self._keys = tuple(p.key for p in papers)
        self.ranking = Ranking(papers)
        self._bit = self.ranking.bit
        self._all = self.ranking.all
        self._everything = {n: Match(papers[n], 0.0) for n in self.ranking.by_rank}
        self._results: OrderedDict[str, QueryResult] = OrderedDict()
        self._leaves: OrderedDict[int, _LeafData] = OrderedDict()
        self._leaf_ids: dict[Leaf, int] = {}
        self._leaf_of: list[Leaf] = []
        self._orders: dict[tuple[object, ...], tuple[int, ...]] = {}
        self.highlights = Highlighter(self.papers, self._bit, self._positions_of)
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
        numbers: Sequence[int] = self._ordered(results, excluded)
        if skip:
            keys = self._keys
            numbers = [n for n in numbers if keys[n] not in skip]
        cut = len(numbers) if cap is None else max(0, cap)
        shown = [self._full(results, n) for n in numbers[:cut]]
        everything = self._everything  # past the cap only the paper counts, not its score
        return shown, [everything[n] for n in numbers[cut:]]

    def keys(self, keywords: Sequence[str], exclude: Sequence[str] = ()) -> set[str]:
        """The keys of the papers :meth:`select` would give, without ranking or highlights."""
        results, excluded = self._results_for(keywords, exclude)
        mask = self._all
        if results:
            mask = 0
            for result in results:
                mask |= result.mask
        papers = self.papers
        return {papers[n].paper.key for n in self.ranking.numbers_of(mask & ~excluded)}

    # -- combining cached results --------------------------------------------------------

    def _results_for(
        self, keywords: Sequence[str], exclude: Sequence[str]
    ) -> tuple[list[QueryResult], int]:
        excluded = 0
        for query in exclude:
            excluded |= self.matches_query(query).mask
        return [self.matches_query(q) for q in dict.fromkeys(keywords)], excluded

    def _ordered(self, results: list[QueryResult], excluded: int) -> tuple[int, ...]:
        """Paper numbers matching any result (all papers for none), none excluded, best
        first."""
        if not results:
            if not excluded:
                return self.ranking.by_rank
            return self.ranking.numbers_of(self._all & ~excluded)
        if len(results) == 1:
            result = results[0]
            if not excluded & result.mask:
                return result.numbers
        key = (excluded, *(r.query for r in results))
        found = self._orders.get(key)
        if found is None:
            mask = 0
            pairs: Pairs = {}
            for result in results:
                mask |= result.mask
                for pair, bits in result.pairs.items():
                    pairs[pair] = pairs.get(pair, 0) | bits
            found = self.ranking.order(pairs, mask & ~excluded)
            if len(self._orders) >= _ORDER_CACHE:
                self._orders.clear()
            self._orders[key] = found
        return found

    def _full(self, results: list[QueryResult], number: int) -> Match:
        """The highlighted :class:`Match` of paper ``number`` for these results."""
        if len(results) == 1:
            return results[0].match(number)
        if not results:
            return self._everything[number]
        bit = self._bit[number]
        having = [r for r in results if r.mask & bit]
        if len(having) == 1:
            return having[0].match(number)
        key = (number, *(r.query for r in having))
        match = self._merged.get(key)
        if match is None:
            if len(self._merged) >= _MERGED_CACHE:
                self._merged.clear()
            match = self._merged[key] = self.highlights.matched(number, [r.pairs for r in having])
        return match

    # -- evaluating one query --------------------------------------------------------------

    def _evaluate(self, query: str) -> QueryResult:
        # Not strict: a query stored before unknown fields were refused keeps its meaning
        # (queries are checked strictly where they come in).
        node = parse(query, strict=False)
        masks: dict[tuple[Node, frozenset[str]], int] = {}
        mask = self._mask(node, DEFAULT_FIELDS, masks)
        pairs: Pairs = {}
        if mask:
            self._contribute(node, DEFAULT_FIELDS, mask, masks, pairs)
        return QueryResult(self, query, mask, pairs)

    def _mask(
        self, node: Node, fields: frozenset[str], memo: dict[tuple[Node, frozenset[str]], int]
    ) -> int:
        """The papers ``node`` matches, as a rank bitmask."""
        key = (node, fields)
        found = memo.get(key)
        if found is not None:
            return found
        if isinstance(node, Field):
            mask = self._mask(node.operand, frozenset({node.name}), memo)
        elif isinstance(node, Not):
            mask = self._all & ~self._mask(node.operand, fields, memo)
        elif isinstance(node, And):
            mask = self._all
            for op in node.operands:
                mask &= self._mask(op, fields, memo)
                if not mask:
                    break
        elif isinstance(node, Or):
            mask = 0
            for op in node.operands:
                mask |= self._mask(op, fields, memo)
        else:
            fieldmask = self._leaf(self._leaf_id(node)).fieldmask
            mask = 0
            for field in fields:
                mask |= fieldmask.get(field, 0)
        memo[key] = mask
        return mask

    def _contribute(
        self,
        node: Node,
        fields: frozenset[str],
        allowed: int,
        memo: dict[tuple[Node, frozenset[str]], int],
        pairs: Pairs,
    ) -> None:
        """Add to ``pairs`` where each positive leaf of ``node`` counts: in the papers of
        ``allowed`` that ``node`` and all its ancestors match (a leaf under NOT never does)."""
        allowed &= self._mask(node, fields, memo)
        if not allowed or isinstance(node, Not):
            return
        if isinstance(node, Field):
            self._contribute(node.operand, frozenset({node.name}), allowed, memo, pairs)
        elif isinstance(node, And | Or):
            for op in node.operands:
                self._contribute(op, fields, allowed, memo, pairs)
        else:
            lid = self._leaf_id(node)
            fieldmask = self._leaf(lid).fieldmask
            for field in fields:
                bits = fieldmask.get(field, 0) & allowed
                if bits:
                    pairs[(lid, field)] = pairs.get((lid, field), 0) | bits

    def _leaf_id(self, leaf: Leaf) -> int:
        lid = self._leaf_ids.get(leaf)
        if lid is None:
            lid = self._leaf_ids[leaf] = len(self._leaf_of)
            self._leaf_of.append(leaf)
        return lid

    def _positions_of(self, lid: int) -> Mapping[int, list[tuple[int, int, int]]]:
        """Where leaf ``lid`` occurs: paper number → (slot number, first word, end word)."""
        return self._leaf(lid).positions

    def _leaf(self, lid: int) -> _LeafData:
        """Where leaf ``lid`` occurs (kept for the most recently used leaves)."""
        data = self._leaves.get(lid)
        if data is None:
            data = self._leaves[lid] = self._find(self._leaf_of[lid])
            if len(self._leaves) > _LEAF_CACHE:
                self._leaves.popitem(last=False)
        else:
            self._leaves.move_to_end(lid)
        return data

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

    def _find(self, leaf: Leaf) -> _LeafData:
        if isinstance(leaf, Phrase):
            head = list(leaf.words[:-1])
            tail: Term | Prefix = Prefix(leaf.words[-1]) if leaf.prefix else Term(leaf.words[-1])
        else:
            head, tail = [], leaf
        ends = self._words(tail)
        candidates = {n for w in ends for n in self._with[w]}
        for word in head:
            candidates.intersection_update(self._with.get(word, ()))
        positions: dict[int, list[tuple[int, int, int]]] = {}
        fieldmask: dict[str, int] = {}
        ending = set(ends)
        size = len(head) + 1
        first = head[0] if head else None
        one = self._stretches.setdefault
        for n in candidates:
            indexed = self.papers[n]
            starts = indexed.postings[first] if first else _positions(indexed, ends)
            found: list[tuple[int, int, int]] = []
            for slot_number, pos in starts:
                slot = indexed.slots[slot_number]
                span = slot.words[pos : pos + size]
                if len(span) == size and list(span[:-1]) == head and span[-1] in ending:
                    # Few distinct ones (slot, word, length): 2,248 leaves at 100,000 bench
                    # subscribers held ~11 MB, ~4.5 MB of them equal tuples.
                    stretch = (slot_number, pos, pos + size)
                    found.append(one(stretch, stretch))
                    field = slot.field
                    fieldmask[field] = fieldmask.get(field, 0) | self._bit[n]
            if found:
                positions[n] = found
        return _LeafData(positions, fieldmask)


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
