"""The Hugging Face daily papers format: one page of the API's JSON list, parsed into papers.

Pure: bytes in, papers and warnings out. A document that is not that shape raises
:class:`SourceError`; one bad element is skipped with a warning and the rest go on.

Sample element (unknown keys are ignored; top-level copies stand in for missing ``paper``
fields; older responses have ``mediaUrl`` where newer ones have ``thumbnail``)::

    {"paper": {"id": "2511.04217", "title": "...", "summary": "...", "upvotes": 42,
               "authors": [{"name": "Ada Okafor", "hidden": false}],
               "publishedAt": "2026-11-14T17:59:01.000Z", "ai_summary": "...",
               "ai_keywords": ["..."], "githubRepo": "https://...", "projectPage": "https://..."},
     "title": "...", "summary": "...", "publishedAt": "...", "numComments": 3,
     "thumbnail": "https://..."}

Decisions: an author with ``hidden: true`` stays an author (``hidden`` only hides the link
to their Hugging Face account; the name is on the public paper page and on arXiv). HTML in
a title is kept as text (escaping is the renderer's job). Abstracts keep their paragraph
breaks; the hard line wraps inside a paragraph (arXiv's) become spaces. Invalid UTF-8 bytes
become U+FFFD with a warning rather than failing the whole day. A paper's key is
:func:`digest.identity.key_of` of its arXiv id, title and authors; its ``link`` is its Hugging
Face page when it has an arXiv id (``sources`` is left to the run, which knows the name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from digest.errors import SourceError
from digest.identity import key_of
from digest.models import Paper, arxiv_base_id

#: C0/C1 controls, DEL, lone surrogates, the noncharacters XML refuses, and the bidi
#: embeddings, overrides and isolates (U+202A-E, U+2066-9) that can make a title or a name
#: display as something else. Tabs and newlines are handled by the callers (titles fold
#: them into spaces, abstracts keep paragraph breaks).
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_SPACES = re.compile(r"\s+")
_PARAGRAPHS = re.compile(r"\n\s*\n")
_COUNT = re.compile(r"[0-9]{1,10}")  # ASCII digits only: int("²") fails, int("٣") is 3
MAX_TEXT = 100_000  # characters kept of any one field: a runaway abstract stays bounded
MAX_COUNT = 2**31 - 1  # upvotes and comments past this are nonsense (and overflow a column)


class _Skip(Exception):
    """This element cannot become a paper; the message says why."""


def clean_line(value: str) -> str:
    """One line of text: control characters dropped, all whitespace runs one space."""
    return _SPACES.sub(" ", _CONTROL.sub("", value[:MAX_TEXT])).strip()


def clean_block(value: str) -> str:
    """Text with paragraphs: lines inside a paragraph joined, paragraphs kept apart."""
    text = _CONTROL.sub("", value[:MAX_TEXT]).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = (clean_line(p) for p in _PARAGRAPHS.split(text))
    return "\n\n".join(p for p in paragraphs if p)


def _describe(text: str) -> str:
    """What a body that is not JSON looks like, for an error message."""
    head = text.lstrip()
    if not head:
        return "an empty body"
    if head[:1] == "<":
        end = head.find(">", 0, 40)
        first = head[: end + 1] if end > 0 else head[:40]
        return f"an HTML or XML page (starts with {first!r})"
    return f"text starting with {clean_line(head[:40])!r}"


def load_document(body: bytes, url: str) -> tuple[list[Any], list[str]]:
    """The JSON list of a response body (UTF-8, a byte order mark allowed), and a warning
    if bytes had to be replaced.

    Raises :class:`SourceError` for anything but a JSON list.
    """
    warnings: list[str] = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A stray bad byte in one abstract must not cost the whole day: it becomes U+FFFD.
        # A document in another encoding (UTF-16, Latin-1 HTML) still fails as not JSON.
        text = body.decode("utf-8", "replace")
        warnings.append(f"invalid UTF-8 (first at byte {exc.start}) replaced by U+FFFD")
    # A UTF-8 byte order mark (Notepad, Excel, some mirrors) says nothing JSON needs; RFC 8259
    # §8.1 lets a parser ignore it, and json.loads would refuse it.
    text = text.removeprefix("\ufeff")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip()[:1] in ("[", "{"):
            reason = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
                reason += " (the response looks truncated)"
        else:
            reason = f"expected a JSON list of papers, got {_describe(text)}"
        raise SourceError(url, reason) from exc
    except RecursionError as exc:
        raise SourceError(url, "invalid JSON: nested too deeply") from exc
    except ValueError as exc:  # an integer of more than 4,300 digits (int_max_str_digits)
        raise SourceError(url, f"invalid JSON: {exc}") from exc
    if not isinstance(document, list):
        kind = {dict: "object", str: "string", bool: "boolean", type(None): "null"}.get(
            type(document), "number"
        )
        detail = ""
        if isinstance(document, dict) and isinstance(document.get("error"), str):
            detail = f": {clean_line(document['error'])[:200]!r}"
        raise SourceError(url, f"expected a JSON list of papers, got a JSON {kind}{detail}")
    return document, warnings


def parse_page(body: bytes, url: str) -> tuple[list[Paper], list[str]]:
    """Papers of one response body, in order, and a warning per element skipped or repaired.

    Duplicates are kept (see :func:`dedupe`). Raises :class:`SourceError` naming ``url``
    when the body is not a JSON list (HTML, truncated or invalid JSON, ...); invalid UTF-8
    bytes inside one become U+FFFD, with a warning.
    """
    items, warnings = load_document(body, url)
    papers, notes = parse_items(items)
    return papers, warnings + notes


def parse_items(items: Sequence[Any], first_index: int = 0) -> tuple[list[Paper], list[str]]:
    """Papers of already-decoded list elements; ``first_index`` numbers them in warnings.

    A warning reads ``item 7 (2511.01234): 'title' missing, skipped``.
    """
    papers: list[Paper] = []
    warnings: list[str] = []
    for offset, element in enumerate(items):
        index = first_index + offset
        notes: list[str] = []
        try:
            paper = parse_item(element, notes)
        except _Skip as skip:
            warnings.append(f"item {index}{_label(element)}: {skip}, skipped")
            continue
        warnings.extend(f"item {index} ({paper.arxiv_id or paper.title[:60]}): {n}" for n in notes)
        papers.append(paper)
    return papers, warnings


def _label(element: Any) -> str:
    if isinstance(element, Mapping):
        inner = element.get("paper")
        raw = inner.get("id") if isinstance(inner, Mapping) else None
        if isinstance(raw, str) and clean_line(raw):
            return f" ({clean_line(raw)[:40]})"
    return ""


def parse_item(element: Any, notes: list[str]) -> Paper:
    """One list element as a :class:`Paper`; raises ``_Skip`` when it cannot be one.

    Required: an object with a non-empty text ``title`` (in ``paper`` or at the top). Repairs
    (an optional field of the wrong type dropped, a count taken as 0) go to ``notes``.
    """
    if not isinstance(element, Mapping):
        raise _Skip(f"expected an object, got {_json_type(element)}")
    inner = element.get("paper")
    if inner is None:
        inner = {}
    elif not isinstance(inner, Mapping):
        raise _Skip(f"'paper' should be an object, got {_json_type(inner)}")
    fields = _Fields(inner, element, notes)

    title = clean_line(fields.required_text("title"))
    if not title:
        raise _Skip("'title' empty")
    raw_id = fields.text("id", top=False)
    arxiv_id = arxiv_base_id(raw_id)
    if raw_id and arxiv_id is None:
        notes.append(f"'id' {clean_line(raw_id)[:40]!r} is not an arXiv id; identified by title")
    summary = fields.text("summary") or ""
    if len(summary) > MAX_TEXT:
        notes.append(f"'summary' of {len(summary):,} characters cut to {MAX_TEXT:,}")
    authors = _authors(inner.get("authors"), notes)
    return Paper(
        key=key_of(arxiv_id=arxiv_id, title=title, authors=authors),
        title=title,
        abstract=clean_block(summary),
        authors=authors,
        arxiv_id=arxiv_id,
        link=f"https://huggingface.co/papers/{arxiv_id}" if arxiv_id else None,
        upvotes=fields.count("upvotes"),
        published=fields.moment("publishedAt"),
        num_comments=fields.count("numComments"),
        thumbnail=fields.link("thumbnail") or fields.link("mediaUrl"),
        ai_summary=clean_block(fields.text("ai_summary") or "") or None,
        ai_keywords=_keywords(inner.get("ai_keywords"), notes),
        github_repo=fields.link("githubRepo"),
        project_page=fields.link("projectPage"),
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


class _Fields:
    """Typed access to a field of ``paper``, falling back to the element's top-level copy."""

    def __init__(self, inner: Mapping[str, Any], outer: Mapping[str, Any], notes: list[str]):
        self.inner = inner
        self.outer = outer
        self.notes = notes

    def _values(self, name: str, top: bool = True) -> Iterable[Any]:
        yield self.inner.get(name)
        if top:
            yield self.outer.get(name)

    def required_text(self, name: str) -> str:
        """The first text value of ``name``; raises ``_Skip`` saying why there is none."""
        wrong: Any = None
        for value in self._values(name):
            if isinstance(value, str) and value.strip():
                return value
            if value is not None and not isinstance(value, str):
                wrong = value
        if wrong is not None:
            raise _Skip(f"'{name}' should be text, got {_json_type(wrong)}")
        raise _Skip(f"'{name}' missing")

    def text(self, name: str, *, top: bool = True) -> str | None:
        for value in self._values(name, top):
            if value is None:
                continue
            if isinstance(value, str):
                return value
            self.notes.append(f"'{name}' should be text, got {_json_type(value)}; ignored")
        return None

    def count(self, name: str) -> int:
        """A non-negative int; JSON ``true`` is not 1. A string of digits is accepted."""
        for value in self._values(name):
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
                return value
            if isinstance(value, str) and _COUNT.fullmatch(value.strip()):
                number = int(value.strip())
                if number <= MAX_COUNT:
                    return number
            self.notes.append(f"'{name}' should be a count, got {value!r:.40}; taken as 0")
            return 0
        return 0

    def moment(self, name: str) -> datetime | None:
        """An ISO 8601 date and time, as an aware UTC datetime (no offset: taken as UTC)."""
        raw = self.text(name)
        if not raw or not raw.strip():
            return None
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):
            self.notes.append(f"'{name}' {clean_line(raw)[:40]!r} is not a date; ignored")
            return None

    def link(self, name: str) -> str | None:
        raw = self.text(name)
        if not raw or not raw.strip():
            return None
        url = raw.strip()
        if not re.match(r"https?://[^\s/]+", url, re.I) or _CONTROL.search(url) or " " in url:
            self.notes.append(f"'{name}' {clean_line(url)[:60]!r} is not an http(s) URL; ignored")
            return None
        return url


def _authors(value: Any, notes: list[str]) -> tuple[str, ...]:
    """Author names, hidden ones included (``hidden`` only hides the HF account link)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        notes.append(f"'authors' should be a list, got {_json_type(value)}; ignored")
        return ()
    names: list[str] = []
    for author in value:
        raw = author.get("name") if isinstance(author, Mapping) else author
        name = clean_line(raw)[:200] if isinstance(raw, str) else ""
        if name:
            names.append(name)
    if len(names) < len(value):
        notes.append(f"{len(value) - len(names)} author(s) without a usable name left out")
    return tuple(names)


def _keywords(value: Any, notes: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        notes.append("'ai_keywords' should be a list of strings; ignored")
        return ()
    return tuple(k for k in (clean_line(k)[:100] for k in value) if k)


def dedupe(papers: Iterable[Paper], warnings: list[str]) -> list[Paper]:
    """The papers without repeats (same key): the first stays, a warning per repeat is
    appended to ``warnings`` (``2511.01234 listed twice; kept the first``)."""
    seen: set[str] = set()
    unique: list[Paper] = []
    for paper in papers:
        if paper.key in seen:
            warnings.append(f"{paper.arxiv_id or paper.title[:60]} listed twice; kept the first")
            continue
        seen.add(paper.key)
        unique.append(paper)
    return unique
