"""A subscriber's sources, likes and like threshold: the checks the config's
``[[subscribers]]`` and the CSV/JSONL import (:mod:`digest.config.roster`) share.

``sources``: names of configured sources (``["arxiv-ml", "hf"]``); ``like``: papers, each
an arXiv id (``2503.01234``, ``2503.01234v2``, ``hep-th/9901001``), an arxiv.org abs or
pdf link, a DOI (``10.1000/xyz``, ``https://doi.org/10.1000/xyz``) or a paper key
(``doi:…``, ``link:…``, ``title:…``); ``like_threshold``: a number from 0 to 1.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
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
