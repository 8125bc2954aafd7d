"""A subscriber's sources, likes and like threshold: the checks the config's
``[[subscribers]]`` and the CSV/JSONL import (:mod:`digest.config.roster`) share.

``sources``: names of configured sources (``["arxiv-ml", "hf"]``); ``like``: papers, each
an arXiv id (``2503.01234``, ``2503.01234v2``, ``hep-th/9901001``), an arxiv.org abs or
pdf link, a DOI (``10.1000/xyz``, ``https://doi.org/10.1000/xyz``) or a paper key
(``doi:…``, ``link:…``, ``title:…``); ``like_threshold``: a number from 0 to 1.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from digest.config.checks import Check, Invalid
from digest.config.sources import source_name
from digest.identity import arxiv_id_of, doi_of

#: What a like may be, for messages.
LIKE_FORMS = (
    'an arXiv id ("2503.01234"), an arxiv.org/abs or /pdf link, a DOI ("10.1000/xyz")'
    ' or a paper key ("link:…", "title:…")'
)
_KEY = re.compile(r"^(?:link:\S+|title:[0-9a-f]{24})$")
_LONGEST = 2000  # characters of one like: an id or a link, never a document


def is_paper_ref(text: str) -> bool:
    """Whether ``text`` names a paper: see the module's docstring."""
    text = text.strip()
    if not text or len(text) > _LONGEST or any(c.isspace() for c in text):
        return False
    return bool(arxiv_id_of(text) or doi_of(text) or _KEY.match(text))


def like_list() -> Check:
    """A list of papers to like (a string: one paper); each checked by :func:`is_paper_ref`."""

    def check(value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise Invalid(f"expected a list of papers: {LIKE_FORMS}")
        found: list[str] = []
        for item in items:
            if not is_paper_ref(item):
                raise Invalid(
                    f"{_quoted(item)} is not a paper: expected {LIKE_FORMS}", quotes_value=True
                )
            found.append(item.strip())
        return tuple(dict.fromkeys(found))

    return check


def source_list() -> Check:
    """A list of source names (a string: one name), at least one."""
    name = source_name()

    def check(value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise Invalid('expected a list of source names, such as ["arxiv-ml"]')
        if not items:
            raise Invalid("expected at least one source name (leave it out for every source)")
        for item in items:
            name(item)
        return tuple(dict.fromkeys(items))

    return check


def unknown_sources(names: Sequence[str], known: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, hint)`` for each of ``names`` that is not one of the ``known`` sources; the
    hint suggests the closest and lists them all."""
    listed = ", ".join(known) if known else "none"
    found: list[tuple[str, str]] = []
    for name in names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        meant = f'did you mean "{close[0]}"? ' if close else ""
        found.append((name, f"{meant}the sources: {listed}"))
    return found


def _quoted(text: str) -> str:
    shown = text if len(text) <= 60 else text[:59] + "…"
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_items(value: Any, what: str) -> list[str]:
    """A CSV cell (``a; b``) or a JSON value (a list of strings, or such a cell) as its
    non-empty items; raises :class:`Invalid` naming ``what`` was expected."""
    if isinstance(value, str):
        items: list[Any] = value.split(";")
    elif isinstance(value, list) and all(isinstance(i, str) for i in value):
        items = value
    else:
        raise Invalid(f"expected a list of {what}")
    return [i.strip() for i in items if i.strip()]


def threshold(value: Any) -> float:
    """A like threshold from a CSV cell or a JSON number: 0 to 1; raises :class:`Invalid`."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    ok = isinstance(number, int | float) and not isinstance(number, bool)
    if not ok or not 0 <= number <= 1:
        raise Invalid("expected a number 0-1")
    return float(number)


#: One wrong value of a row: (field, the value or None, why).
Wrong = tuple[str, str | None, str]


def row_preferences(
    row: Mapping[str, Any], known: Sequence[str] | None
) -> tuple[dict[str, Any], list[Wrong]]:
    """An import row's ``sources`` (each a configured source, of ``known``; None: not
    checked; empty: every source), ``like`` (papers to add to their likes) and
    ``like_threshold`` (0-1; empty: the default), and what is wrong with them."""
    wrong: list[Wrong] = []
    names = _items("sources", row.get("sources"), "source names", wrong)
    formed = []
    for name in names:
        try:
            formed.append(source_name()(name))
        except Invalid:
            wrong.append(("sources", name, "expected lower-case letters, digits or -"))
    for name, hint in unknown_sources(formed, known) if known is not None else ():
        wrong.append(("sources", name, f"no such source ({hint})"))
    likes = _items("like", row.get("like"), "papers", wrong)
    wrong += [
        ("like", i, f"not a paper: expected {LIKE_FORMS}") for i in likes if not is_paper_ref(i)
    ]
    value = row.get("like_threshold")
    limit = None
    if value is not None and not (isinstance(value, str) and not value.strip()):
        try:
            limit = threshold(value)
        except Invalid as exc:
            wrong.append(
                ("like_threshold", value if isinstance(value, str) else json.dumps(value), str(exc))
            )
    return {"sources": names or None, "like": likes, "like_threshold": limit}, wrong


def _items(field: str, value: Any, what: str, wrong: list[Wrong]) -> tuple[str, ...]:
    """A ``;``-separated cell or a JSON list as its distinct items."""
    try:
        return tuple(dict.fromkeys(split_items(value or [], what)))
    except Invalid as exc:
        wrong.append((field, None, str(exc)))
        return ()
