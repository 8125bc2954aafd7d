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
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from digest.errors import SourceError
from digest.models import Paper, arxiv_base_id, paper_key

#: C0/C1 controls, DEL, lone surrogates and the noncharacters XML refuses; tabs and newlines
#: are handled by the callers (titles fold them into spaces, abstracts keep paragraph breaks).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
_PARAGRAPHS = re.compile(r"\n\s*\n")
_MAX_TEXT = 100_000  # characters kept of any one field: a runaway abstract stays bounded


class _Skip(Exception):
    """This element cannot become a paper; the message says why."""


def clean_line(value: str) -> str:
    """One line of text: control characters dropped, all whitespace runs one space."""
    return _SPACES.sub(" ", _CONTROL.sub("", value[:_MAX_TEXT])).strip()


def clean_block(value: str) -> str:
    """Text with paragraphs: lines inside a paragraph joined, paragraphs kept apart."""
    text = _CONTROL.sub("", value[:_MAX_TEXT]).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = (clean_line(p) for p in _PARAGRAPHS.split(text))
    return "\n\n".join(p for p in paragraphs if p)


def _describe(body: bytes) -> str:
    head = body.lstrip()[:60].decode("utf-8", "replace")
    if head[:1] == "<":
        return f"an HTML or XML page (starts with {head[:30]!r})"
    return f"{head!r}" if head else "an empty body"


def load_document(body: bytes, url: str) -> list[Any]:
    """The JSON list of a response body; raises :class:`SourceError` for anything else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # A stray bad byte in one abstract must not cost the whole day: it becomes U+FFFD.
        text = body.decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip()[:1] in ("[", "{"):
            reason = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
                reason += " (the response looks truncated)"
        else:
            reason = f"expected a JSON list of papers, got {_describe(body)}"
        raise SourceError(url, reason) from exc
    if not isinstance(document, list):
        kind = type(document).__name__.replace("dict", "object").replace("NoneType", "null")
        detail = ""
        if isinstance(document, dict) and isinstance(document.get("error"), str):
            detail = f": {clean_line(document['error'])[:200]!r}"
        raise SourceError(url, f"expected a JSON list of papers, got a JSON {kind}{detail}")
    return document


def parse_page(body: bytes, url: str) -> tuple[list[Paper], list[str]]:
    """Papers of one response body, in order, and a warning per element skipped or repaired.

    Raises :class:`SourceError` when the body is not a JSON list.
    """
    return parse_items(load_document(body, url))


def parse_items(items: Sequence[Any], first_index: int = 0) -> tuple[list[Paper], list[str]]:
    """Papers of already-decoded list elements; ``first_index`` numbers them in warnings."""
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
        if isinstance(raw, str) and raw:
            return f" ({clean_line(raw)[:40]})"
    return ""


def parse_item(element: Any, notes: list[str]) -> Paper:
    """One list element as a :class:`Paper`; raises ``_Skip`` when it cannot be one.

    Repairs (a wrong-typed optional field dropped) are appended to ``notes``.
    """
    if not isinstance(element, Mapping):
        raise _Skip(f"expected an object, got {type(element).__name__}")
    inner = element.get("paper")
    if inner is None:
        inner = {}
    elif not isinstance(inner, Mapping):
        raise _Skip(f"'paper' should be an object, got {type(inner).__name__}")
    fields = _Fields(inner, element, notes)

    title = clean_line(fields.text("title") or "")
    if not title:
        raise _Skip("'title' missing or empty")
    raw_id = fields.text("id", top=False)
    arxiv_id = arxiv_base_id(raw_id)
    if raw_id and arxiv_id is None:
        notes.append(f"'id' {clean_line(raw_id)[:40]!r} is not an arXiv id; identified by title")
    return Paper(
        key=paper_key(arxiv_id, title),
        title=title,
        abstract=clean_block(fields.text("summary") or ""),
        authors=_authors(inner.get("authors"), notes),
        arxiv_id=arxiv_id,
        upvotes=fields.count("upvotes"),
        published=fields.moment("publishedAt"),
        num_comments=fields.count("numComments"),
        thumbnail=fields.link("thumbnail") or fields.link("mediaUrl"),
        ai_summary=clean_block(fields.text("ai_summary") or "") or None,
        ai_keywords=_keywords(inner.get("ai_keywords"), notes),
        github_repo=fields.link("githubRepo"),
        project_page=fields.link("projectPage"),
    )


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

    def text(self, name: str, *, top: bool = True) -> str | None:
        for value in self._values(name, top):
            if value is None:
                continue
            if isinstance(value, str):
                return value
            self.notes.append(f"'{name}' should be text, got {type(value).__name__}; ignored")
        return None

    def count(self, name: str) -> int:
        for value in self._values(name):
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
            if isinstance(value, str) and value.strip().isdigit():
                return int(value.strip())
            self.notes.append(f"'{name}' should be a count, got {value!r:.40}; taken as 0")
            return 0
        return 0

    def moment(self, name: str) -> datetime | None:
        raw = self.text(name)
        if not raw:
            return None
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            self.notes.append(f"'{name}' {raw[:40]!r} is not a date; ignored")
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def link(self, name: str) -> str | None:
        raw = self.text(name)
        if not raw:
            return None
        url = raw.strip()
        if not re.match(r"https?://[^\s/]+", url, re.I) or _CONTROL.search(url) or " " in url:
            self.notes.append(f"'{name}' {url[:60]!r} is not an http(s) URL; ignored")
            return None
        return url


def _authors(value: Any, notes: list[str]) -> tuple[str, ...]:
    """Author names; ``hidden`` only hides the HF account link, the name stays public."""
    if value is None:
        return ()
    if not isinstance(value, list):
        notes.append(f"'authors' should be a list, got {type(value).__name__}; ignored")
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
    """The papers without repeats (same key): the first stays, a warning names the others."""
    seen: set[str] = set()
    unique: list[Paper] = []
    for paper in papers:
        if paper.key in seen:
            warnings.append(f"{paper.arxiv_id or paper.title[:60]} listed twice; kept once")
            continue
        seen.add(paper.key)
        unique.append(paper)
    return unique
