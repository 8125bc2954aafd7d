"""Rendering one subscriber's digest email, HTML and text, from operator-overridable templates.

Templates come from the operator's ``templates_dir`` first, then the bundled defaults; HTML is
autoescaped, undefined names are errors, and each template gets one documented context object
(:class:`SubjectContext`, :class:`DigestContext`, :class:`PaperView`). Each paper's fragments are
rendered and CSS-inlined once per (paper, highlights, terms) and cached, so one email is mostly
string joins; the HTML stays under Gmail's clipping size by listing lower-ranked papers compactly.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import css_inline
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    nodes,
    select_autoescape,
)
from markupsafe import Markup, escape

from digest.compose.message import Body, quoted_printable
from digest.errors import RenderError
from digest.models import Match, Paper, Subscriber

#: Gmail clips an HTML part over 102 KB; leave room for the transfer encoding's estimate error.
HTML_BUDGET = 90_000
TITLE_LIMIT = 300
SHORT_TITLE_LIMIT = 110
ABSTRACT_LIMIT = 600
AUTHOR_LIMIT = 80
KEYWORD_LIMIT = 200
#: With more than ``AUTHORS_SHOWN + 1`` authors, the first ``AUTHORS_SHOWN`` are named.
AUTHORS_SHOWN = 3
_MARK = '<mark class="hl">'  # how to_html opens a highlight
_COMPACT_RESERVE = 1_000  # room for the shell's "also matching" heading once compact appears
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: Template names, relative to a templates folder; ``email/email.css`` is read as plain CSS.
TEMPLATES = {
    "subject": "email/subject.txt",
    "digest_html": "email/digest.html",
    "digest_text": "email/digest.txt",
    "paper_html": "email/paper.html",
    "paper_text": "email/paper.txt",
    "compact_html": "email/compact.html",
    "compact_text": "email/compact.txt",
}
STYLESHEET = "email/email.css"


@dataclass(frozen=True, slots=True)
class EmailLinks:
    """The links of one subscriber's email, built by the caller (tokens, base URL)."""

    unsubscribe_url: str
    manage_url: str | None = None
    feed_url: str | None = None
    #: the full list of the day's papers, linked from "N more" (e.g. base_url/archive/DATE)
    archive_url: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A rendered digest: ``shown`` papers in full, ``compact`` listed briefly, ``more`` left
    out by ``max_papers``. ``html_body`` and ``text_body`` are encoded for
    :func:`digest.message.build_message`, joined from fragments encoded once; ``html`` and
    ``text`` decode them (a digest is sent as the bodies: the strings are never built)."""

    subject: str
    shown: int
    compact: int
    more: int
    html_body: Body
    text_body: Body

    @property
    def html(self) -> str:
        return _decoded(self.html_body)

    @property
    def text(self) -> str:
        return _decoded(self.text_body)

    @property
    def html_size(self) -> int:
        """Bytes of the HTML part once encoded: what Gmail's 102 KB clipping measures."""
        return len(self.html_body.data)


def _decoded(body: Body) -> str:
    """The text a quoted-printable body of ours holds, with ``\n`` line ends."""
    return binascii.a2b_qp(body.data).decode("utf-8").replace("\r\n", "\n")


@dataclass(frozen=True, slots=True)
class SubjectContext:
    """Context of ``email/subject.txt``; the output is cleaned to one line."""

    site_title: str
    day: date
    day_label: str  #: e.g. ``22 Nov 2026``
    count: int  #: papers of the digest, including those past ``max_papers``
    total_in_listing: int
    since: date | None = None  #: first listing date of a digest covering several (weekly...)


@dataclass(frozen=True, slots=True)
class PaperView:
    """Context of ``email/paper.*`` (full entry) and ``email/compact.*`` (brief entry).

    Text is cleaned (one line, no control characters or bidi overrides); ``*_html`` fields
    are escaped with matched words in ``<mark class="hl">``. URLs are http(s) or None.
    """

    key: str
    arxiv_id: str | None
    title: str  #: at most 300 characters
    title_html: Markup
    short_title: str  #: at most 110 characters, for compact entries
    url: str | None  #: the paper's page: Hugging Face, else its project page or code
    hf_url: str | None
    abs_url: str | None
    pdf_url: str | None
    code_url: str | None
    project_url: str | None
    authors: tuple[str, ...]  #: the authors named; ``authors_more`` are not
    authors_html: tuple[Markup, ...]
    authors_more: int
    upvotes: int
    comments: int
    abstract: str  #: cut at a sentence end near 600 characters (else a word, then " …")
    abstract_html: Markup
    abstract_trimmed: bool
    terms: tuple[str, ...]  #: the subscriber's query terms this paper matched


@dataclass(frozen=True, slots=True)
class DigestContext:
    """Context of ``email/digest.html`` and ``email/digest.txt``, the per-subscriber shell.

    ``papers`` and ``compact`` hold the entries, already rendered from ``email/paper.*`` and
    ``email/compact.*`` (HTML: already inlined): output them as they are, once each. Compact
    HTML entries are ``<li>`` elements, for a ``<ul>`` or ``<ol>`` around them.
    """

    subject: str
    preheader: str  #: the inbox preview line
    site_title: str
    base_url: str
    day: date
    day_label: str
    subscriber_email: str
    subscriber_name: str | None
    keywords: tuple[str, ...]  #: the subscriber's queries, as written
    exclude: tuple[str, ...]
    total_in_listing: int
    matched_count: int  #: papers of the digest, including those past ``max_papers``
    shown_count: int  #: in full
    compact_count: int  #: listed briefly to stay under the size budget
    more_count: int  #: past ``max_papers``, only counted
    max_papers: int | None
    papers: Markup
    compact: Markup
    stylesheet: Markup  #: ``email/email.css``; put it in a ``<style>`` in the HTML head
    unsubscribe_url: str
    manage_url: str | None
    feed_url: str | None
    more_url: str | None
    #: first listing date when the digest covers several (weekly, catch-up), else None;
    #: ``total_in_listing`` then counts the papers of all of them
    since: date | None = None


def default_templates_dir() -> Path:
    """The bundled templates: ``digest/templates`` in a wheel, else the repository's."""
    package = Path(__file__).resolve().parent.parent  # digest/
    packaged = package / "templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


def environment(templates_dir: Path | None = None) -> Environment:
    """A Jinja environment trying ``templates_dir`` first, then the bundled templates;
    autoescaping ``.html``/``.xml``, with undefined names raising."""
    folders = [templates_dir] if templates_dir is not None else []
    folders.append(default_templates_dir())
    return Environment(
        loader=ChoiceLoader([FileSystemLoader(folder) for folder in folders]),
        autoescape=select_autoescape(("html", "htm", "xml"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
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
    best = 0
    for m in _SENTENCE_END.finditer(text, 0, limit + 1):
        before = text[: m.start()].rsplit(None, 1)
        word = before[-1].lower() if before else ""
        after = text[m.end() :].lstrip()[:1]
        single_initial = len(word) == 1 and word.isalpha()
        if word in _NOT_SENTENCE_END or single_initial or after.islower():
            continue
        best = m.end()
    if best >= limit * 2 // 5:
        return best, False
    return cut_at_word(text, limit)[0], True


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


def to_html(pieces: Sequence[tuple[str, bool]], suffix: str = "") -> Markup:
    """Escaped HTML of ``pieces``, highlighted ones in ``<mark class="hl">``."""
    html = "".join(
        f'<mark class="hl">{escape(piece)}</mark>' if marked else str(escape(piece))
        for piece, marked in pieces
    )
    return Markup(html + str(escape(suffix)))


@dataclass(frozen=True, slots=True)
class _Layout:
    """What a paper's entry looks like whatever is highlighted in it: the cuts and links."""

    title_end: int
    title_cut: bool
    abstract_end: int
    ellipsis: bool
    authors: tuple[tuple[str, int, bool, bool], ...]  # (name, end, cut, tidy) of those named
    authors_more: int
    hf_url: str | None
    abs_url: str | None
    pdf_url: str | None
    code_url: str | None
    project_url: str | None
    title_tidy: bool  #: nothing to clean (see :func:`tidy`)
    abstract_tidy: bool


@lru_cache(maxsize=4_096)
def _layout(paper: Paper) -> _Layout:
    title_end, title_cut = cut_at_word(paper.title, TITLE_LIMIT)
    abstract_end, ellipsis = trim_abstract(paper.abstract)
    named = paper.authors if len(paper.authors) <= AUTHORS_SHOWN + 1 else paper.authors[:3]
    return _Layout(
        title_end,
        title_cut,
        abstract_end,
        ellipsis,
        tuple((name, *cut_at_word(name, AUTHOR_LIMIT), tidy(name)) for name in named),
        len(paper.authors) - len(named),
        safe_url(paper.hf_url),
        safe_url(paper.abs_url),
        safe_url(paper.pdf_url),
        safe_url(paper.github_repo),
        safe_url(paper.project_page),
        tidy(paper.title),
        tidy(paper.abstract),
    )


def paper_view(match: Match) -> PaperView:
    """The template view of one matched paper: cleaned, trimmed, highlighted."""
    paper = match.paper
    layout = _layout(paper)
    by_field: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for span in match.spans:
        index = span.index if span.field == "author" else 0
        by_field.setdefault((span.field, index), []).append((span.start, span.end))

    title_cut = layout.title_cut
    title_pieces = segments(
        paper.title, by_field.get(("title", 0), ()), layout.title_end, tidy=layout.title_tidy
    )
    title = "".join(p for p, _ in title_pieces) + (" …" if title_cut else "")
    short_end, short_cut = cut_at_word(title, SHORT_TITLE_LIMIT)
    short_title = title[:short_end] + " …" if short_cut else title

    abstract_end = layout.abstract_end
    abstract_pieces = segments(
        paper.abstract, by_field.get(("abstract", 0), ()), abstract_end, tidy=layout.abstract_tidy
    )
    suffix = " …" if layout.ellipsis else ""

    authors: list[str] = []
    authors_html: list[Markup] = []
    for index, (name, end, cut, neat) in enumerate(layout.authors):
        pieces = segments(name, by_field.get(("author", index), ()), end, tidy=neat)
        if pieces:
            authors.append("".join(p for p, _ in pieces) + ("…" if cut else ""))
            authors_html.append(to_html(pieces, "…" if cut else ""))

    terms = (clean(t)[:KEYWORD_LIMIT] for t in match.terms)
    return PaperView(
        key=paper.key,
        arxiv_id=paper.arxiv_id,
        title=title,
        title_html=to_html(title_pieces, " …" if title_cut else ""),
        short_title=short_title,
        url=layout.hf_url or layout.project_url or layout.code_url,
        hf_url=layout.hf_url,
        abs_url=layout.abs_url,
        pdf_url=layout.pdf_url,
        code_url=layout.code_url,
        project_url=layout.project_url,
        authors=tuple(authors),
        authors_html=tuple(authors_html),
        authors_more=layout.authors_more,
        upvotes=paper.upvotes,
        comments=paper.num_comments,
        abstract="".join(p for p, _ in abstract_pieces) + suffix,
        abstract_html=to_html(abstract_pieces, suffix),
        abstract_trimmed=abstract_end < len(paper.abstract.rstrip()),
        terms=tuple(dict.fromkeys(t for t in terms if t)),
    )


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Cache(Generic[K, V]):
    """A dict of at most ``size`` entries, dropping the least recently used first (a run
    visits subscribers in no order of their queries: popular papers and highlights come
    back all along, and would be rendered again and again if the oldest went first)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._data: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._data.pop(key, None)  # values are never None
        if value is not None:
            self._data[key] = value  # now the most recent
        return value

    def put(self, key: K, value: V) -> V:
        self._data[key] = value
        if len(self._data) > self.size:
            del self._data[next(iter(self._data))]
        return value

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class _Fragment:
    """One entry, quoted-printable: joined as is into the message (only the encoded form
    is kept, so twice as many fit in the same memory)."""

    html_qp: bytes
    text_qp: bytes


@dataclass(frozen=True, slots=True)
class _Shell:
    """A rendered shell cut at its slots: literal, slot, literal, … (literals QP-encoded)."""

    parts: tuple[str, ...]
    encoded: tuple[bytes, ...]
    size: int


def _as_dict(context: Any) -> dict[str, Any]:
    if isinstance(context, dict):
        return context
    return {f.name: getattr(context, f.name) for f in fields(context)}


#: The shell's per-subscriber text (see :meth:`Renderer._html_shell`); tuples hold one each.
_SHELL_TEXT = (
    "subject",
    "preheader",
    "subscriber_email",
    "subscriber_name",
    "unsubscribe_url",
    "manage_url",
    "feed_url",
    "more_url",
)
_SHELL_LISTS = ("keywords", "exclude")
#: Nodes that take a template's names where this module cannot follow them.
_OPAQUE = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.EvalContextModifier,
)


def prints_only(env: Environment, name: str, texts: Iterable[str], lists: Iterable[str]) -> bool:
    """Whether template ``name`` (autoescaped) only prints the values ``texts`` and the
    items of ``lists`` (``{{ v }}``, ``{% for q in l %}…{{ q }}``) or tests their truth
    (``{% if v %}``, ``… if v else …``): then its output for any such values is its output
    for placeholders with the escaped values put in their place."""
    try:
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        tree = env.parse(source)
    except TemplateError:
        return False
    autoescape = env.autoescape(name) if callable(env.autoescape) else env.autoescape
    if not autoescape or any(True for _ in tree.find_all(_OPAQUE)):
        return False
    lists = set(lists)
    watched = set(texts) | lists
    loops = [
        loop
        for loop in tree.find_all(nodes.For)
        if isinstance(loop.iter, nodes.Name) and loop.iter.name in lists
    ]
    for loop in loops:
        if not isinstance(loop.target, nodes.Name):
            return False
        watched.add(loop.target.name)
    return _only_printed(tree, None, watched, loops)


def _only_printed(
    node: nodes.Node, parent: nodes.Node | None, watched: set[str], loops: list[nodes.For]
) -> bool:
    if isinstance(node, nodes.Name) and node.name in watched:
        if node.ctx != "load":  # assigned: only as the target of a loop over a list
            if not any(node is loop.target for loop in loops):
                return False
        elif not (
            isinstance(parent, nodes.Output)
            or (isinstance(parent, nodes.If | nodes.CondExpr) and parent.test is node)
            or any(parent is loop and loop.iter is node for loop in loops)
        ):
            return False
    return all(_only_printed(child, node, watched, loops) for child in node.iter_child_nodes())


class Renderer:
    """Renders digests with one set of templates; keep one per run to share its caches.

    ``templates_dir`` is tried before the bundled templates. ``html_budget`` is the most
    bytes the HTML part should take once encoded; ``cache_size`` bounds the caches of paper
    and compact fragments (least recently used go first; an entry is ~6 KB, so the default
    takes ~70 MB per process; for 100,000 bench subscribers 10,000 such entries rendered
    58% of the fragments 5,000 first-in-first-out ones did, 20,000 33%); the other caches
    hold at most 5,000 (templates per paper) or 2,000 (inlined shells) entries. Raises
    :class:`RenderError` when a template is missing or broken.
    """

    def __init__(
        self,
        templates_dir: Path | None = None,
        *,
        site_title: str = "Paper Digest",
        base_url: str = "http://localhost:8000",
        html_budget: int = HTML_BUDGET,
        cache_size: int = 12_000,
    ) -> None:
        if templates_dir is not None and not templates_dir.is_dir():
            raise RenderError(str(templates_dir), "templates_dir is not a folder")
        self.site_title = site_title
        self.base_url = base_url
        self.html_budget = html_budget
        self.env = environment(templates_dir)
        self._templates: dict[str, Template] = {}
        for key, name in TEMPLATES.items():
            try:
                self._templates[key] = self.env.get_template(name)
            except TemplateError as exc:
                raise RenderError(name, f"{type(exc).__name__}: {exc}") from exc
        try:
            css = self.env.loader.get_source(self.env, STYLESHEET)[0]  # type: ignore[union-attr]
        except TemplateError as exc:
            raise RenderError(STYLESHEET, f"{type(exc).__name__}: {exc}") from exc
        self.stylesheet = Markup(css)
        # Only @media rules stay in <style> (dark mode, phones); the rest goes inline.
        self._inliner = css_inline.CSSInliner(
            keep_style_tags=False,
            keep_at_rules=True,
            minify_css=True,
            load_remote_stylesheets=False,
        )
        # Placeholders no listing or subscriber text can contain: fresh per renderer.
        nonce = secrets.token_hex(8)
        self._slot_papers = f"pdslot{nonce}papers"
        self._slot_compact = f"pdslot{nonce}compact"
        self._slots = re.compile(f"({self._slot_papers}|{self._slot_compact})")
        self._mask = f"pdmask{nonce}v"
        self._fragments: dict[str, _Cache[Hashable, _Fragment]] = {
            kind: _Cache(cache_size) for kind in ("paper", "compact")
        }
        self._slot_title = f"pdslot{nonce}title"
        self._slot_abstract = f"pdslot{nonce}abstract"
        self._slot_author = f"pdslot{nonce}author"
        self._slot_terms = f"pdslot{nonce}terms"
        self._terms_slottable = {"paper": True, "compact": True}
        self._parts: dict[str, _Cache[Hashable, tuple[str, str]]] = {
            kind: _Cache(min(cache_size, 5_000)) for kind in ("paper", "compact")
        }
        try:
            probe = str(self._inliner.inline_fragment(f"{_MARK}x</mark>", self.css))
        except css_inline.InlineError as exc:
            raise RenderError(STYLESHEET, f"CSS inlining failed: {exc}") from exc
        self._mark_open = probe[: probe.index("x</mark>")] if "x</mark>" in probe else _MARK
        self._by_id: dict[str, _Cache[int, tuple[Match, _Fragment]]] = {
            kind: _Cache(cache_size) for kind in ("paper", "compact")
        }
        self._shells: _Cache[str, str] = _Cache(min(cache_size, 2_000))
        self._shell_shared = prints_only(
            self.env, TEMPLATES["digest_html"], _SHELL_TEXT, _SHELL_LISTS
        )
        self._literals: _Cache[str, bytes] = _Cache(min(cache_size, 2_000))
        self._subjects: _Cache[tuple[date, int, int, date | None], str] = _Cache(1_000)

    def _render(self, key: str, context: Any) -> str:
        template = self._templates[key]
        try:
            return template.render(_as_dict(context))
        except Exception as exc:  # an operator's template can fail in any way
            raise RenderError(TEMPLATES[key], f"{type(exc).__name__}: {exc}") from exc

    def _fragment(self, match: Match, kind: str) -> _Fragment:
        """The fragments of ``match`` (``kind`` ``paper`` or ``compact``), rendered once.

        Looked up by the identity of ``match`` first (a run hands the same objects to every
        subscriber of a query), then by its value: paper, highlight spans and terms.
        """
        by_id = self._by_id[kind]
        seen = by_id.get(id(match))
        if seen is not None and seen[0] is match:
            return seen[1]
        key = (match.paper, match.spans, match.terms)
        cache = self._fragments[kind]
        hit = cache.get(key)
        if hit is None:
            hit = cache.put(key, self._make_fragment(match, kind))
        by_id.put(id(match), (match, hit))
        return hit

    def _make_fragment(self, match: Match, kind: str) -> _Fragment:
        """One entry's HTML and text. What does not depend on the highlights (the template
        rendered and CSS-inlined, the text entry) is made once per (paper, terms); each set
        of highlights only fills the title, abstract and author slots of that HTML."""
        view = paper_view(match)
        parts = self._parts[kind]
        # Terms go in a slot too, when the templates only ever print them joined by ", ".
        slot_terms = self._terms_slottable[kind] and bool(view.terms)
        key = (match.paper, bool(view.terms)) if slot_terms else (match.paper, view.terms)
        hit = parts.get(key)
        if hit is None:
            pair = (f"{self._slot_terms}1z", f"{self._slot_terms}2z")
            slotted = replace(
                view,
                title_html=Markup(self._slot_title),
                abstract_html=Markup(self._slot_abstract),
                authors_html=tuple(
                    Markup(f"{self._slot_author}{i}z") for i in range(len(view.authors_html))
                ),
                terms=pair if slot_terms else view.terms,
            )
            try:
                inlined = self._inliner.inline_fragment(
                    self._render(f"{kind}_html", slotted), self.css
                )
            except css_inline.InlineError as exc:
                raise RenderError(STYLESHEET, f"CSS inlining failed: {exc}") from exc
            shell = str(inlined).strip() + "\n"
            text = self._render(f"{kind}_text", slotted).rstrip("\n") + "\n"
            if slot_terms:
                joined = f"{pair[0]}, {pair[1]}"
                if all(t.count(pair[0]) == t.count(joined) for t in (shell, text)):
                    shell = shell.replace(joined, self._slot_terms)
                    text = text.replace(joined, self._slot_terms)
                else:  # a template that lists terms its own way: render per set of terms
                    self._terms_slottable[kind] = False
                    return self._make_fragment(match, kind)
            hit = parts.put(key, (shell, text))
        shell, text = hit
        html = shell.replace(self._slot_title, self._marked(view.title_html))
        html = html.replace(self._slot_abstract, self._marked(view.abstract_html))
        for i, author in enumerate(view.authors_html):
            html = html.replace(f"{self._slot_author}{i}z", self._marked(author))
        if slot_terms:
            terms = ", ".join(view.terms)
            html = html.replace(self._slot_terms, str(escape(terms)))
            text = text.replace(self._slot_terms, terms)
        return _Fragment(quoted_printable(html), quoted_printable(text))

    def _marked(self, html: Markup) -> str:
        """Highlighted HTML with the highlight's inlined style (``.hl`` in the stylesheet)."""
        return str(html).replace(_MARK, self._mark_open)

    @property
    def css(self) -> str:
        return str(self.stylesheet)

    def subject(
        self, day: date, count: int, total_in_listing: int, since: date | None = None
    ) -> str:
        """The subject line of a digest of ``count`` papers (from ``email/subject.txt``)."""
        key = (day, count, total_in_listing, since)
        hit = self._subjects.get(key)
        if hit is None:
            label = period_label(since, day)
            context = SubjectContext(self.site_title, day, label, count, total_in_listing, since)
            hit = self._subjects.put(key, clean(self._render("subject", context)))
        return hit

    def _cut(self, rendered: str) -> _Shell:
        """``rendered`` cut at the slots, each literal before a slot ending with a newline."""
        parts = self._slots.split(rendered)
        encoded: list[bytes] = []
        for index, part in enumerate(parts):
            if index % 2:
                encoded.append(b"")
                continue
            if index + 1 < len(parts) and not part.endswith("\n"):
                parts[index] = part = part + "\n"
            qp = self._literals.get(part)
            encoded.append(
                qp if qp is not None else self._literals.put(part, quoted_printable(part))
            )
        return _Shell(tuple(parts), tuple(encoded), sum(len(e) for e in encoded))

    def _html_shell(self, context: DigestContext) -> _Shell:
        """The HTML shell rendered, inlined and cut at its slots.

        CSS inlining is the costly step, and shells differ between subscribers mostly in
        text: subject, preview line, queries, address, name and links. When the template
        only prints those values or tests them (see :func:`prints_only`), it is rendered
        with placeholders in their place, and the inlined rendering is shared by every
        subscriber whose shell differs only in them; their escaped values fill it.
        """
        if self._shell_shared:
            slotted, values = self._placeholders(context)
            shared = self._render("digest_html", slotted)
            inlined = self._shells.get(shared)
            if inlined is None:
                inlined = self._shells.put(shared, self._inline_shared(shared, values))
            if inlined:  # "": placeholders did not survive inlining as they were
                return self._cut(_fill(inlined, values))
            html = _fill(shared, values)
        else:
            html = self._render("digest_html", context)
        inlined = self._shells.get(html)
        if inlined is None:
            inlined = self._shells.put(html, self._inline(html))
        return self._cut(inlined)

    def _inline(self, html: str) -> str:
        try:
            return str(self._inliner.inline(html))
        except css_inline.InlineError as exc:
            raise RenderError(TEMPLATES["digest_html"], f"CSS inlining failed: {exc}") from exc

    def _inline_shared(self, shared: str, values: Sequence[tuple[str, str]]) -> str:
        """``shared`` inlined, or "" when a placeholder is not where it was (in CSS, say)."""
        inlined = self._inline(shared)
        if any(shared.count(token) != inlined.count(token) for token, _ in values):
            return ""
        return inlined

    def _placeholders(self, context: DigestContext) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """``context`` with its per-subscriber text as placeholders, and (placeholder,
        escaped value) pairs. Only printable, non-blank values: HTML parsing treats
        whitespace and control characters apart, placeholders never."""
        values: list[tuple[str, str]] = []
        mask = self._mask

        def hold(value: str | None) -> str | None:
            if not value or not value.isprintable() or value.isspace():
                return value
            token = f"{mask}{len(values)}x"
            values.append((token, str(escape(value))))
            return token

        slotted = _as_dict(context)
        for name in _SHELL_TEXT:
            slotted[name] = hold(slotted[name])
        for name in _SHELL_LISTS:
            slotted[name] = tuple(map(hold, slotted[name]))
        return slotted, values

    def _assemble(
        self,
        shell: _Shell,
        template: str,
        entries: dict[str, list[bytes]],
    ) -> Body:
        """The shell with each slot filled by its entry's encoded pieces, as a
        quoted-printable body. Every piece comes from :func:`quoted_printable` (no line
        starts with ".") and ends with a newline, so neither does a line of the whole:
        SMTP sends it without dot-stuffing."""
        chunks: list[bytes] = []
        for index, part in enumerate(shell.parts):
            if index % 2 == 0:
                chunks.append(shell.encoded[index])
            elif part in entries:
                chunks += entries[part]
        for slot, pieces in entries.items():
            if pieces and slot not in shell.parts:
                name = "papers" if slot == self._slot_papers else "compact"
                raise RenderError(
                    template, f"does not output {{{{ {name} }}}}: papers would be lost"
                )
        return Body("quoted-printable", b"".join(chunks), dotted=False)

    def render_digest(
        self,
        *,
        day: date,
        subscriber: Subscriber,
        matches: Sequence[Match],
        links: EmailLinks,
        total_in_listing: int,
        max_papers: int | None,
        since: date | None = None,
    ) -> RenderedEmail:
        """One subscriber's email for ``day``; ``matches`` best first.

        ``since``: the oldest listing date a scheduled digest covers (catch-up, weekly);
        the labels then name the period.

        The first ``max_papers`` matches go in (None: all), the rest are counted as "N more"
        with a link to ``links.archive_url``. The best-ranked are shown in full; when the
        rest would push the HTML part past ``html_budget``, those are listed compactly.
        Raises :class:`RenderError` when a template fails.
        """
        chosen = matches if max_papers is None else matches[: max(0, max_papers)]
        full = [self._fragment(m, "paper") for m in chosen]
        subject = self.subject(day, len(matches), total_in_listing, since)
        titles = "; ".join(clean(m.paper.title) for m in chosen[:2])
        count = f"{len(matches)} new paper{'' if len(matches) == 1 else 's'}"
        context = DigestContext(
            subject=subject,
            preheader=(f"{count}: {titles}" if titles else count)[:150],
            site_title=self.site_title,
            base_url=self.base_url,
            day=day,
            day_label=period_label(since, day),
            subscriber_email=subscriber.email,
            subscriber_name=subscriber.name,
            keywords=tuple(clean(q)[:KEYWORD_LIMIT] for q in subscriber.keywords),
            exclude=tuple(clean(q)[:KEYWORD_LIMIT] for q in subscriber.exclude),
            total_in_listing=total_in_listing,
            matched_count=len(matches),
            shown_count=len(chosen),
            compact_count=0,
            more_count=len(matches) - len(chosen),
            max_papers=max_papers,
            papers=Markup(self._slot_papers),
            compact=Markup(self._slot_compact),
            stylesheet=self.stylesheet,
            unsubscribe_url=links.unsubscribe_url,
            manage_url=links.manage_url,
            feed_url=links.feed_url,
            more_url=links.archive_url,
            since=since if since is not None and since < day else None,
        )
        shell = self._html_shell(context)
        in_full = len(full)
        compact: list[_Fragment] = []
        if shell.size + sum(len(f.html_qp) for f in full) > self.html_budget:
            compact = [self._fragment(m, "compact") for m in chosen]
            room = self.html_budget - shell.size - _COMPACT_RESERVE
            in_full = _how_many_in_full(
                [len(f.html_qp) for f in full], [len(c.html_qp) for c in compact], room
            )
            context = replace(context, shown_count=in_full, compact_count=len(chosen) - in_full)
            shell = self._html_shell(context)
        shown, brief = full[:in_full], compact[in_full:]
        html_body = self._assemble(
            shell,
            TEMPLATES["digest_html"],
            {
                self._slot_papers: [f.html_qp for f in shown],
                self._slot_compact: [c.html_qp for c in brief],
            },
        )
        # Full text entries are separated by a blank line.
        papers_qp = [t for f in shown for t in (b"\r\n", f.text_qp)][1:]
        text_body = self._assemble(
            self._cut(self._render("digest_text", context)),
            TEMPLATES["digest_text"],
            {
                self._slot_papers: papers_qp,
                self._slot_compact: [c.text_qp for c in brief],
            },
        )
        return RenderedEmail(
            subject=subject,
            shown=in_full,
            compact=len(brief),
            more=context.more_count,
            html_body=html_body,
            text_body=text_body,
        )


def _fill(text: str, values: Iterable[tuple[str, str]]) -> str:
    """``text`` with each placeholder replaced by its value."""
    for token, value in values:
        text = text.replace(token, value)
    return text


def _how_many_in_full(full: Sequence[int], compact: Sequence[int], room: int) -> int:
    """The largest k such that the first k entries in full and the rest compact fit in
    ``room`` bytes (0 when even all-compact does not fit: every paper stays in)."""
    used = sum(compact)
    k = 0
    for full_size, compact_size in zip(full, compact, strict=True):
        if used - compact_size + full_size > room:
            break
        used += full_size - compact_size
        k += 1
    return k
