"""Indexing a paper for matching: the folded words of its title, abstract and each author's
name, with where each word stands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
