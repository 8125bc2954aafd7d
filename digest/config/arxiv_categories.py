"""The shape of an arXiv category as ``[[sources]] categories`` names it, with a suggestion
for a near miss (``cs.lg`` -> ``cs.LG``, ``hep_th`` -> ``hep-th``, ``cs-LG`` -> ``cs.LG``).

An archive (``cs``, ``math``, ``hep-th``) or a subject class of one (``cs.LG``,
``math.AG``, ``astro-ph.CO``, ``cond-mat.mes-hall``). The archives are arXiv's own list;
the subject classes are checked by shape only (two capitals, or lower-case words for
``physics`` and ``cond-mat``), so a class arXiv adds later is accepted. Pure: no I/O.
"""

from __future__ import annotations

import difflib
import re

from digest.config.checks import Invalid

#: Archives whose subject classes are two capitals: ``cs.LG``, ``astro-ph.CO``.
_UPPER = ("cs", "math", "stat", "eess", "econ", "q-bio", "q-fin", "astro-ph", "nlin")
#: Archives whose subject classes are lower-case words: ``physics.optics``, ``cond-mat.soft``.
_LOWER = ("physics", "cond-mat")
#: Archives with no subject classes.
_WHOLE = (
    "gr-qc",
    "hep-ex",
    "hep-lat",
    "hep-ph",
    "hep-th",
    "math-ph",
    "nucl-ex",
    "nucl-th",
    "quant-ph",
)
ARCHIVES = (*_UPPER, *_LOWER, *_WHOLE)
_UPPER_CLASS = re.compile(r"[A-Z]{2}")
_LOWER_CLASS = re.compile(r"[a-z]+(?:-[a-z]+)*")
_EXAMPLES = 'an archive such as "cs" or "hep-th", or a subject class such as "cs.LG" or "math.AG"'


def check_category(value: object) -> str:
    """``value`` when it is an archive or a subject class of one; raises :class:`Invalid`
    saying what was expected and, for a near miss, the category most likely meant."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected an arXiv category: {_EXAMPLES}")
    if _valid(value):
        return value
    meant = likely(value)
    if meant is not None and meant != value:
        raise Invalid(f"{_quoted(value)} is not an arXiv category: did you mean {_quoted(meant)}?")
    if "," in value or " " in value.strip():
        raise Invalid(
            f"{_quoted(value)} is not one arXiv category: give each as its own string,"
            ' such as ["cs.LG", "cs.CL"]'
        )
    raise Invalid(f"{_quoted(value)} is not an arXiv category: expected {_EXAMPLES}")


def _valid(value: str) -> bool:
    archive, dot, subject = value.partition(".")
    if archive not in ARCHIVES:
        return False
    if not dot:
        return True
    if archive in _UPPER:
        return bool(_UPPER_CLASS.fullmatch(subject))
    if archive in _LOWER:
        return bool(_LOWER_CLASS.fullmatch(subject))
    return False


def likely(value: str) -> str | None:
    """The category ``value`` most likely means (case, separators, a typo in the
    archive), or None when nothing is close."""
    text = value.strip().replace("_", "-")
    if text.lower() in ARCHIVES:
        return text.lower()
    parts = re.split(r"[.:/ ]", text, maxsplit=1)
    if len(parts) == 1 and "-" in text:  # cs-LG, astro-ph-CO
        head, _, tail = text.rpartition("-")
        if head.lower() in ARCHIVES:
            parts = [head, tail]
    archive = _archive_like(parts[0])
    if archive is None:
        return None
    if len(parts) == 1 or not parts[1]:
        return archive
    subject = parts[1]
    if archive in _UPPER:
        subject = subject.upper()
    elif archive in _LOWER:
        subject = subject.lower()
    else:
        return archive  # hep-th.XX: hep-th has no subject classes
    meant = f"{archive}.{subject}"
    return meant if _valid(meant) else None


def _archive_like(text: str) -> str | None:
    lowered = text.lower()
    if lowered in ARCHIVES:
        return lowered
    close = difflib.get_close_matches(lowered, ARCHIVES, n=1, cutoff=0.75)
    return close[0] if close else None


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
