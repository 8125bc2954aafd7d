"""The one rule for words: runs of letters and digits, case- and accent-folded.

Shared by the query language, the matcher and paper identity, so they always agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

#: A word is a run of letters and digits; everything else separates words.
WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Case- and accent-fold ``text`` (``Naïve`` -> ``naive``, ``Straße`` -> ``strasse``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def normalise(text: str) -> str:
    """``text`` as folded words separated by single spaces."""
    return " ".join(WORD.findall(fold(text)))


def words(text: str) -> list[str]:
    """The folded words of ``text``, in order."""
    return WORD.findall(fold(text))


def word_spans(text: str) -> Iterator[tuple[str, int, int]]:
    """Each word of ``text`` folded, with its ``[start, end)`` in the original ``text``.

    A word whose folding yields several words (rare ligatures) yields each of them
    with the span of the original word.
    """
    for m in WORD.finditer(text):
        for w in WORD.findall(fold(m.group())):
            yield w, m.start(), m.end()
