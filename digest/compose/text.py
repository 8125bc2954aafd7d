"""Text for templates: cleaned to one line, cut at words and sentences, dates as labels,
links made safe, highlights as escaped HTML in ``<mark class="hl">``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date
from urllib.parse import urlsplit

from markupsafe import Markup

ABSTRACT_LIMIT = 600
#: A short abstract (``abstract = "short"``) keeps its first sentences up to this length.
SHORT_ABSTRACT_LIMIT = 300
MARK = '<mark class="hl">'  # how to_html opens a highlight
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
_SPECIAL = re.compile("[&<>'\"]")
_SAFE_URL = re.compile(r"https?://[!#-;=?-~]+", re.IGNORECASE)  # no space, quotes, < or >
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")
# Words whose period does not end a sentence ("et al. show", "e.g. this").
_NOT_SENTENCE_END = frozenset(
    {"e.g", "i.e", "al", "fig", "figs", "eq", "eqs", "vs", "cf", "etc", "approx", "resp"}
    | {"sec", "ref", "refs", "tab", "no", "dr", "prof", "st"}
)


def clean(text: str) -> str:
    """``text`` on one line: controls become spaces, bidi overrides and lone surrogates go,
    whitespace runs become one space."""
    return _one_line(text).strip()


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", _INVISIBLE.sub("", _CONTROL.sub(" ", text)))


def day_label(day: date) -> str:
    """``22 Nov 2026``, the same in every locale."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def period_label(since: date | None, day: date) -> str:
    """``22 Nov 2026``, or for a digest covering several listing dates ``19–22 Nov 2026``,
    ``28 Nov – 3 Dec 2026``, ``29 Dec 2026 – 2 Jan 2027``."""
    if since is None or since >= day:
        return day_label(day)
    if since.year != day.year:
        return f"{day_label(since)} – {day_label(day)}"
    if since.month != day.month:
        return f"{since.day} {_MONTHS[since.month - 1]} – {day_label(day)}"
    return f"{since.day}–{day_label(day)}"


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL with a host and no space or quote, else None
    (so a ``javascript:`` link from a listing never becomes a link)."""
    if not url:
        return None
    url = url.strip()
    if not _SAFE_URL.fullmatch(url):
        return None
    try:
        return url if urlsplit(url).hostname else None
    except ValueError:
        return None


def cut_at_word(text: str, limit: int) -> tuple[int, bool]:
    """Where to end ``text`` to keep at most ``limit`` characters, at a word boundary when
    one is in the second half; and whether it was cut."""
    if len(text) <= limit:
        return len(text), False
    space = max(text.rfind(" ", 0, limit + 1), text.rfind("\n", 0, limit + 1))
    end = space if space > limit // 2 else limit
    return len(text[:end].rstrip()) or end, True


def trim_abstract(text: str, limit: int = ABSTRACT_LIMIT) -> tuple[int, bool]:
    """Where to end the abstract shown: ``(end, needs_ellipsis)``.

    Whole up to ``limit`` + 10%; else after the last sentence ending by ``limit`` that keeps
    at least 40% of it; else at the last word boundary, with an ellipsis.
    """
    if len(text) <= limit * 11 // 10:
        return len(text), False
    best = _last_sentence_end(text, limit)
    if best >= limit * 2 // 5:
        return best, False
    return cut_at_word(text, limit)[0], True


def short_abstract(text: str, limit: int = SHORT_ABSTRACT_LIMIT) -> tuple[int, bool]:
    """Where a short abstract ends: ``(end, needs_ellipsis)``, ``text[:end]`` being shown.

    Whole when it fits in ``limit``; else its sentences that end by ``limit``; else its
    words that do (with an ellipsis), never part of a word: a first word longer than
    ``limit`` gives ``(0, True)``. ``"We study it. Then…"`` (limit 14) gives ``(12, False)``.
    """
    if len(text.rstrip()) <= limit:
        return len(text.rstrip()), False
    best = _last_sentence_end(text, limit)
    if best:
        return best, False
    space = max((m.start() for m in re.finditer(r"\s", text[: limit + 1])), default=0)
    return len(text[:space].rstrip()), True


def _last_sentence_end(text: str, limit: int) -> int:
    """The end of the last sentence of ``text`` that ends by ``limit``, or 0. A period after
    an abbreviation ("et al.", "e.g.") or an initial, or followed by a lower-case letter,
    ends none."""
    best = 0
    for m in _SENTENCE_END.finditer(text, 0, limit + 1):
        before = text[: m.start()].rsplit(None, 1)
        word = before[-1].lower() if before else ""
        after = text[m.end() :].lstrip()[:1]
        single_initial = len(word) == 1 and word.isalpha()
        if word in _NOT_SENTENCE_END or single_initial or after.islower():
            continue
        best = m.end()
    return best


def _merge(text: str, spans: Iterable[tuple[int, int]], end: int) -> list[tuple[int, int]]:
    """Spans clipped to ``[0, end)``, sorted, and merged when they overlap or only spaces
    and hyphens lie between them (a matched phrase is one mark)."""
    merged: list[tuple[int, int]] = []
    for start, stop in sorted((max(0, s), min(end, e)) for s, e in spans):
        if start >= stop:
            continue
        if merged and (start <= merged[-1][1] or not text[merged[-1][1] : start].strip(" -")):
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def tidy(text: str) -> bool:
    """Whether ``text`` has nothing to clean (so neither has any part of it)."""
    return _one_line(text) == text


def segments(
    text: str, spans: Iterable[tuple[int, int]], end: int, *, tidy: bool = False
) -> list[tuple[str, bool]]:
    """``text[:end]`` as cleaned ``(piece, highlighted)`` pairs; ``spans`` index ``text``.
    ``tidy``: ``text`` is known to need no cleaning (see :func:`tidy`)."""
    if not spans:  # one piece: what the loops below make of it
        raw = text[:end]
        piece = (raw if tidy else _one_line(raw)).strip(" ")
        return [(piece, False)] if piece else []
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for start, stop in _merge(text, spans, end):
        if start > pos:
            pieces.append((text[pos:start], False))
        pieces.append((text[start:stop], True))
        pos = stop
    if pos < end:
        pieces.append((text[pos:end], False))
    out: list[tuple[str, bool]] = []
    for raw, marked in pieces:
        piece = raw if tidy else _one_line(raw)
        if piece.startswith(" ") and (not out or out[-1][0].endswith(" ")):
            piece = piece.lstrip(" ")
        if piece:
            out.append((piece, marked))
    if out and out[-1][0].endswith(" "):
        out[-1] = (out[-1][0].rstrip(" "), out[-1][1])
    return [(piece, marked) for piece, marked in out if piece]


def escape_text(text: str) -> str:
    """``text`` escaped for HTML as :func:`markupsafe.escape` escapes a plain string (``&``,
    ``<``, ``>``, ``'`` and ``"``), as a plain string: without a Markup object per call."""
    if not _SPECIAL.search(text):
        return text
    return (
        text.replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


def to_html(pieces: Sequence[tuple[str, bool]], suffix: str = "") -> Markup:
    """Escaped HTML of ``pieces``, highlighted ones in ``<mark class="hl">``."""
    html = "".join(
        f'<mark class="hl">{escape_text(piece)}</mark>' if marked else escape_text(piece)
        for piece, marked in pieces
    )
    return Markup(html + escape_text(suffix))
