"""Indexing a paper for matching: the folded words of its title, abstract and each author's
name, with where each word stands."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from digest.models import Paper
from digest.words import word_spans


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


H = TypeVar("H", bound=Hashable)

#: Equal values seen so far, to keep one object of each (see :func:`index_paper`).
Common = dict[Hashable, Hashable]


def _one(common: Common, value: H) -> H:
    return common.setdefault(value, value)  # type: ignore[return-value]


def _slot(field: str, index: int, text: str, common: Common) -> Slot:
    found = list(word_spans(text))
    return Slot(
        field,
        index,
        text,
        tuple(_one(common, w) for w, _, _ in found),
        tuple(_one(common, s) for _, s, _ in found),
        tuple(_one(common, e) for _, _, e in found),
    )


def index_paper(paper: Paper, common: Common | None = None) -> IndexedPaper:
    """``paper`` with the folded words of its title, abstract and each author's name.

    ``common``: one dict for all the papers of a day, so that equal words, offsets,
    positions and posting lists are one object each (a day's 500 papers indexed took
    ~29 MB apart, ~8 MB so: each of a run's processes keeps its own)."""
    common = {} if common is None else common
    slots = [_slot("title", 0, paper.title, common), _slot("abstract", 0, paper.abstract, common)]
    slots += [_slot("author", i, name, common) for i, name in enumerate(paper.authors)]
    postings: dict[str, list[tuple[int, int]]] = {}
    for number, slot in enumerate(slots):
        for pos, word in enumerate(slot.words):
            postings.setdefault(word, []).append(_one(common, (number, pos)))
    return IndexedPaper(
        paper, tuple(slots), {w: _one(common, tuple(p)) for w, p in postings.items()}
    )
