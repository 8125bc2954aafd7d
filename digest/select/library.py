"""A subscriber's reference library read into entries: BibTeX (as Zotero, Mendeley and
Google Scholar export it, parsed by bibtexparser 1.4) and CSL JSON (Zotero's, Mendeley's,
Pandoc's ``.json``).

Pure: bytes and a file name in, :class:`LibraryRead` out. Each entry keeps its title and
abstract (LaTeX turned into text), its arXiv id (from ``eprint`` + ``archivePrefix``,
``arxivid``, an arXiv URL or DOI, or "arXiv:…" in ``journal``/``note``), its DOI, authors
and year. An entry with neither title nor abstract is skipped with its reason, as is a
second entry of one paper. Raises :class:`RosterError` for a file that is neither.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bibtexparser  # type: ignore[import-untyped]  # no type information shipped
from bibtexparser.bparser import BibTexParser  # type: ignore[import-untyped]
from bibtexparser.customization import convert_to_unicode  # type: ignore[import-untyped]

from digest.errors import RosterError
from digest.identity import arxiv_id_of, doi_of, identities, key_of

#: "arXiv:2401.01234", "arXiv preprint arXiv:2401.01234v2", "arXiv: hep-th/9901001".
_ARXIV_MENTION = re.compile(
    r"\barxiv\s*[:/]\s*((?:\d{4}\.\d{4,5}|[a-z\-]+(?:\.[a-z]{2})?/\d{7})(?:v\d+)?)", re.I
)
_YEAR = re.compile(r"\b(\d{4})\b")
#: Where an entry starts: ``@article{key,`` (its type and key).
_BIB_START = re.compile(r"^[ \t]*@[ \t]*(\w+)[ \t]*[{(][ \t]*([^,\s{}()]*)", re.M)
_SPACE = re.compile(r"\s+")
#: Font commands convert_to_unicode does not know (``\emph{…}``, ``\textit{…}``): their
#: text stays; then TeX's math shifts and the braces it leaves (``{{BERT}}``) go.
_TEX_COMMAND = re.compile(r"\\(?:emph|textit|textbf|textsc|texttt|textrm|mathrm|mathbf|mbox)\s*\{")
#: The old font switches (``{\em Branes}``, ``{\bf x}``): the switch goes, the text stays.
_TEX_SWITCH = re.compile(r"\\(?:em|it|bf|sc|tt|rm|sl|sf)\b\s*")
_TEX_MARKS = re.compile(r"[{}$]")


@dataclass(frozen=True)
class LibraryEntry:
    """One paper of a library: ``ref`` names it in the file (its BibTeX key or CSL id, else
    ``#n``, its position)."""

    ref: str
    title: str = ""
    abstract: str = ""
    arxiv_id: str | None = None
    doi: str | None = None
    link: str | None = None
    authors: tuple[str, ...] = ()
    year: int | None = None

    @property
    def identities(self) -> list[str]:
        """Every key the entry's paper may be known by, best first (see digest.identity);
        an entry with an abstract only is known by its abstract's hash."""
        return identities(
            arxiv_id=self.arxiv_id,
            doi=self.doi,
            link=self.link,
            title=self.title or self.abstract,
            authors=self.authors,
        )

    @property
    def key(self) -> str:
        """The entry's paper key: :func:`digest.identity.key_of` of what it gives."""
        return key_of(
            arxiv_id=self.arxiv_id,
            doi=self.doi,
            link=self.link,
            title=self.title or self.abstract,
            authors=self.authors,
        )


@dataclass(frozen=True)
class LibraryRead:
    """What a library file gave: ``entries`` to import, each once; ``skipped`` (ref,
    reason) for those left out; ``kind`` "bibtex" or "csl-json"."""

    source: str
    kind: str
    entries: tuple[LibraryEntry, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def read_library(data: bytes, filename: str) -> LibraryRead:
    """The entries of the BibTeX or CSL JSON file ``filename`` holding ``data``.

    The format comes from the extension (``.bib``/``.bibtex``, ``.json``/``.csljson``),
    else from the content. Raises :class:`RosterError` (naming ``filename``) for a file
    that is not UTF-8, not JSON where JSON was expected, or holds no entry of either.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterError(
            filename, f"not UTF-8 (byte {exc.start}): export the library as UTF-8"
        ) from None
    kind = _kind(filename, text)
    raw = _csl_entries(text, filename) if kind == "csl-json" else _bib_entries(text, filename)
    return _gathered(filename, kind, raw)


def _kind(filename: str, text: str) -> str:
    name = filename.lower()
    if name.endswith((".json", ".csljson")):
        return "csl-json"
    if name.endswith((".bib", ".bibtex")):
        return "bibtex"
    return "csl-json" if text.lstrip()[:1] in ("[", "{") else "bibtex"


def _gathered(
    filename: str, kind: str, raw: Iterable[tuple[str, LibraryEntry | str]]
) -> LibraryRead:
    entries: list[LibraryEntry] = []
    skipped: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for ref, found in raw:
        if isinstance(found, str):
            skipped.append((ref, found))
            continue
        same = next((first[k] for k in found.identities if k in first), None)
        if same is not None:
            skipped.append((ref, f"the same paper as {same}"))
            continue
        for k in found.identities:
            first.setdefault(k, ref)
        entries.append(found)
    if not entries and not skipped:
        what = "CSL JSON" if kind == "csl-json" else "BibTeX"
        raise RosterError(
            filename,
            f"no {what} entry found: export the library as BibTeX (.bib) or CSL JSON (.json)",
        )
    return LibraryRead(filename, kind, tuple(entries), tuple(skipped))


def _entry(
    ref: str,
    title: str,
    abstract: str,
    candidates: Iterable[str | None],
    doi: str | None,
    link: str | None,
    authors: tuple[str, ...],
    year: int | None,
) -> LibraryEntry | str:
    """The entry, or why it is skipped."""
    if not title and not abstract:
        return "neither a title nor an abstract"
    arxiv = arxiv_id_of(*candidates)
    bare = doi_of(doi)
    return LibraryEntry(
        ref=ref,
        title=title,
        abstract=abstract,
        arxiv_id=arxiv,
        doi=None if bare and arxiv_id_of(bare) else bare,
        link=None if link and (arxiv_id_of(link) or doi_of(link)) else link,
        authors=authors,
        year=year,
    )


# -- BibTeX -------------------------------------------------------------------------------


def _bib_entries(text: str, filename: str) -> list[tuple[str, LibraryEntry | str]]:
    parser = BibTexParser(common_strings=True, ignore_nonstandard_types=False)
    parser.customization = _unicode
    try:
        db = bibtexparser.loads(text, parser=parser)
    except Exception as exc:  # bibtexparser raises pyparsing's and its own errors
        raise RosterError(filename, f"not BibTeX that can be read: {exc}") from None
    out: list[tuple[str, LibraryEntry | str]] = []
    for n, fields in enumerate(db.entries, 1):
        f = {k.lower(): v for k, v in fields.items() if isinstance(v, str)}
        ref = f.get("id") or f"#{n}"
        out.append((ref, _bib_entry(ref, f)))
    # bibtexparser leaves out an entry it cannot read (an unbalanced brace, no key): say so
    read = {str(fields.get("ID", "")) for fields in db.entries}
    starts = [
        m
        for m in _BIB_START.finditer(text)
        if m.group(1).lower() not in ("comment", "string", "preamble")
    ]
    if len(starts) <= len(db.entries):
        return out  # (a key written with LaTeX, m{\"u}ller, is read as müller)
    for m in starts:
        if m.group(2) not in read:
            line = text.count("\n", 0, m.start()) + 1
            ref = m.group(2) or f"line {line}"
            out.append(
                (ref, f"cannot be read (line {line}): an unbalanced brace or quote, or no key?")
            )
    return out


def _bib_entry(ref: str, f: Mapping[str, str]) -> LibraryEntry | str:
    eprint = f.get("eprint", "")
    prefix = (f.get("archiveprefix") or f.get("eprinttype") or "").strip().lower()
    # An eprint of another archive (``archivePrefix = {HAL}``) is not an arXiv id.
    candidates = [eprint if prefix in ("", "arxiv") else None]
    candidates += [f.get("arxivid"), f.get("arxiv"), f.get("url"), f.get("doi")]
    candidates += _mentions(f.get(k, "") for k in ("journal", "note", "howpublished", "number"))
    return _entry(
        ref,
        _tex_text(f.get("title", "")),
        _tex_text(f.get("abstract", "")),
        candidates,
        f.get("doi"),
        f.get("url"),
        tuple(_tex_text(a) for a in re.split(r"\s+and\s+", f.get("author", "")) if a.strip()),
        _year(f.get("year") or f.get("date") or ""),
    )


def _unicode(record: dict[str, Any]) -> dict[str, Any]:
    """bibtexparser's LaTeX-to-unicode customization, after the font commands are gone."""
    for k, v in record.items():
        if isinstance(v, str) and k not in ("ID", "ENTRYTYPE"):
            record[k] = _TEX_SWITCH.sub("", _TEX_COMMAND.sub("{", v))
    converted: dict[str, Any] = convert_to_unicode(record)
    return converted


def _tex_text(value: str) -> str:
    """A BibTeX value (already through :func:`_unicode`) as plain text."""
    return _SPACE.sub(" ", _TEX_MARKS.sub("", value)).strip()


def _mentions(values: Iterable[str]) -> list[str | None]:
    return [m.group(1) for v in values if (m := _ARXIV_MENTION.search(v or ""))]


def _year(value: str) -> int | None:
    m = _YEAR.search(value)
    return int(m.group(1)) if m else None


# -- CSL JSON -----------------------------------------------------------------------------


def _csl_entries(text: str, filename: str) -> list[tuple[str, LibraryEntry | str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RosterError(
            filename,
            f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): export the"
            " library as BibTeX (.bib) or CSL JSON (.json)",
        ) from None
    if isinstance(data, dict):
        data = data.get("items", [data] if "title" in data or "type" in data else None)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise RosterError(
            filename,
            "not CSL JSON (a list of items, each an object with a title): export the"
            " library as BibTeX (.bib) or CSL JSON (.json)",
        )
    out: list[tuple[str, LibraryEntry | str]] = []
    for n, item in enumerate(data, 1):
        ref = str(item.get("id") or f"#{n}")
        out.append((ref, _csl_entry(ref, item)))
    return out


def _csl_entry(ref: str, item: Mapping[str, Any]) -> LibraryEntry | str:
    def text(key: str) -> str:
        value = item.get(key)
        return _SPACE.sub(" ", value).strip() if isinstance(value, str) else ""

    candidates: list[str | None] = [text("arxiv"), text("URL"), text("DOI")]
    candidates += _mentions([text("id"), text("note"), text("container-title"), text("number")])
    return _entry(
        ref,
        _strip_html(text("title")),
        _strip_html(text("abstract")),
        candidates,
        text("DOI") or None,
        text("URL") or None,
        tuple(_csl_name(a) for a in item.get("author") or () if isinstance(a, dict)),
        _csl_year(item.get("issued")),
    )


def _strip_html(value: str) -> str:
    """CSL titles may carry rich-text tags (``<i>in vivo</i>``): their text stays."""
    return _SPACE.sub(" ", re.sub(r"</?(?:i|b|sup|sub|span|sc)\b[^>]*>", "", value)).strip()


def _csl_name(author: Mapping[str, Any]) -> str:
    literal = author.get("literal")
    if isinstance(literal, str):
        return literal.strip()
    parts = (author.get("family"), author.get("given"))
    return ", ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def _csl_year(issued: Any) -> int | None:
    if isinstance(issued, dict):
        parts = issued.get("date-parts")
        if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
            year = parts[0][0]
            if isinstance(year, int):
                return year
            if isinstance(year, str) and year.isdigit():
                return int(year)
        raw = issued.get("raw") or issued.get("literal")
        return _year(raw) if isinstance(raw, str) else None
    return None
