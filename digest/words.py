"""The one rule for words: runs of letters and digits, case- and accent-folded.

Shared by the query language, the matcher and paper identity, so they always agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

#: A word is a run of letters and digits; everything else separates words.
WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Case- and accent-fold ``text`` (``Naïve`` -> ``naive``, ``Straße`` -> ``strasse``)."""
    if text.isascii():  # NFKD leaves ASCII alone, and there casefold() is lower()
        return text.lower()
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

    The words are exactly :func:`words` of ``text``, also where folding joins or splits
    characters (a decomposed ``mode\u0300le`` is one word, ``GPT™`` is ``gpttm``). A
    word whose folding yields several words (``½``) yields each of them with the span of
    the original character; marks that fold away stay with the word before them.
    """
    if text.isascii():  # the common case: folding is lower-casing, offsets unchanged
        for m in WORD.finditer(text):
            yield m.group().lower(), m.start(), m.end()
        return
    parts = [_fold_char(c) for c in text]
    owner = [i for i, part in enumerate(parts) for _ in part]
    for m in WORD.finditer("".join(parts)):
        start, end = owner[m.start()], owner[m.end() - 1] + 1
        while end < len(text) and not parts[end]:
            end += 1
        yield m.group(), start, end


# Folding works character by character (NFKD decomposes each character on its own and
# the marks that canonical reordering could move are all dropped), so a cache per
# character gives the offsets of the folded text for free.
_fold_char = lru_cache(maxsize=8192)(fold)
