"""The template contexts, the documented contract with operators' templates
(:class:`SubjectContext`, :class:`DigestContext`, :class:`PaperView`), and each matched
paper's view: cleaned, trimmed, highlighted."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from functools import lru_cache
from typing import Any

from markupsafe import Markup

from digest.compose.feedback import FeedbackLinks
from digest.compose.origin import arxiv_category, hf_url, page_url
from digest.compose.text import (
    clean,
    cut_at_word,
    safe_url,
    segments,
    short_abstract,
    tidy,
    to_html,
    trim_abstract,
)
from digest.models import Match, Paper

TITLE_LIMIT = 300
SHORT_TITLE_LIMIT = 110
AUTHOR_LIMIT = 80
KEYWORD_LIMIT = 200
#: Longest category or source name shown (names are short; a stored one might not be).
NAME_LIMIT = 60
#: With more than ``AUTHORS_SHOWN + 1`` authors, the first ``AUTHORS_SHOWN`` are named.
AUTHORS_SHOWN = 3


@dataclass(frozen=True, slots=True)
class EmailLinks:
    """The links of one subscriber's email, built by the caller (tokens, base URL)."""

    #: None when the recipient is not a subscriber (a one-off ``digest send``): there is
    #: nothing to unsubscribe from, so no link and no ``List-Unsubscribe``
    unsubscribe_url: str | None
    manage_url: str | None = None
    feed_url: str | None = None
    #: the full list of the day's papers, linked from "N more" (e.g. base_url/archive/DATE)
    archive_url: str | None = None
    #: makes each paper's "more like this" and "less like this" links (a subscriber's
    #: email); None: none (someone who is not a subscriber)
    feedback: FeedbackLinks | None = None


@dataclass(frozen=True, slots=True)
class SubjectContext:
    """Context of ``email/subject.txt``; the output is cleaned to one line."""

    site_title: str
    day: date
    day_label: str  #: e.g. ``22 Nov 2026``
    count: int  #: papers the email shows (in full or briefly): not those past ``max_papers``
    matched: int  #: papers that matched, including those past ``max_papers`` (>= ``count``)
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
    #: the paper's own page: the link its source gave (Hugging Face's page, arXiv's abstract
    #: page, a feed entry's page), else Hugging Face's, arXiv's, its project page or code
    url: str | None
    hf_url: str | None  #: its Hugging Face page, only when it is on Hugging Face
    abs_url: str | None  #: arXiv's abstract page (arXiv papers only)
    pdf_url: str | None  #: arXiv's PDF (arXiv papers only: a feed's paper has none)
    code_url: str | None
    project_url: str | None
    authors: tuple[str, ...]  #: the authors named; ``authors_more`` are not
    authors_html: tuple[Markup, ...]
    authors_more: int
    upvotes: int  #: on Hugging Face
    comments: int
    primary_category: str | None  #: arXiv's primary category (``cs.LG``) of an arXiv paper
    #: the names of the configured sources that listed it, when the digest reads several
    #: (``show_sources``); else empty
    sources: tuple[str, ...]
    #: ``abstract = "full"``: cut at a sentence end near 600 characters (else a word, then
    #: " …"); ``"short"``: its sentences up to ~300 characters (else words, then " …");
    #: ``"none"``: empty
    abstract: str
    abstract_html: Markup
    abstract_trimmed: bool  #: part of the abstract is left out: link to the paper for it
    terms: tuple[str, ...]  #: the subscriber's query terms this paper matched
    #: the subscriber's "more like this" and "less like this" links (signed, per subscriber
    #: and paper: filled in each email, the entry itself is rendered once for everyone);
    #: None when there are none (a one-off to someone who is not a subscriber, compact
    #: entries)
    more_url: str | None = None
    less_url: str | None = None
    #: a similarity pick's reason (no ``terms`` then): the title of the liked paper it is
    #: nearest to (cleaned, at most 110 characters) and how similar, in percent (0-100)
    like: str | None = None
    similarity: int | None = None


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
    unsubscribe_url: str | None  #: None: the recipient is not a subscriber (``one_off``)
    manage_url: str | None
    feed_url: str | None
    more_url: str | None
    #: the email as a web page: the archive's page of its date, its papers in its order
    #: (``links.archive_url`` with the queries as ``?q=`` and ``?x=``); None without one
    browser_url: str | None
    #: first listing date when the digest covers several (weekly, catch-up), else None;
    #: ``total_in_listing`` then counts the papers of all of them
    since: date | None = None
    #: a one-off ``digest send`` (queries chosen by whoever sent it, not a subscription);
    #: ``unsubscribe_url`` and ``manage_url`` are then set only when the address also
    #: subscribes (active or paused), and ``feed_url`` is their feed, else the public one
    one_off: bool = False
    #: some papers are similarity picks (the subscriber likes papers): without keywords,
    #: the digest holds the papers most like those they like, not every paper
    picked: bool = False


@dataclass(frozen=True, slots=True)
class _Layout:
    """What a paper's entry looks like whatever is highlighted in it: the cuts and links."""

    title_end: int
    title_cut: bool
    abstract_end: int
    ellipsis: bool
    authors: tuple[tuple[str, int, bool, bool], ...]  # (name, end, cut, tidy) of those named
    authors_more: int
    url: str | None
    hf_url: str | None
    abs_url: str | None
    pdf_url: str | None
    code_url: str | None
    project_url: str | None
    primary_category: str | None
    sources: tuple[str, ...]
    title_tidy: bool  #: nothing to clean (see :func:`tidy`)
    abstract_tidy: bool


#: Layouts by the identity of the paper (a run hands the same Paper objects to every
#: subscriber; hashing one hashes all its fields): (paper, abstract) -> (paper, layout).
_by_id: dict[tuple[int, str], tuple[Paper, _Layout]] = {}


def _layout(paper: Paper, abstract: str) -> _Layout:
    """The layout of ``paper`` showing ``abstract`` (see :func:`_make_layout`), kept for the
    object while it is held (the held paper keeps its id from being reused)."""
    seen = _by_id.get((id(paper), abstract))
    if seen is not None and seen[0] is paper:
        return seen[1]
    if len(_by_id) >= 4_096:
        _by_id.clear()
    layout = _make_layout(paper, abstract)
    _by_id[id(paper), abstract] = (paper, layout)
    return layout


@lru_cache(maxsize=4_096)
def _make_layout(paper: Paper, abstract: str) -> _Layout:
    title_end, title_cut = cut_at_word(paper.title, TITLE_LIMIT)
    if abstract == "none":
        abstract_end, ellipsis = 0, False
    elif abstract == "short":
        abstract_end, ellipsis = short_abstract(paper.abstract)
    else:
        abstract_end, ellipsis = trim_abstract(paper.abstract)
    named = paper.authors if len(paper.authors) <= AUTHORS_SHOWN + 1 else paper.authors[:3]
    return _Layout(
        title_end,
        title_cut,
        abstract_end,
        ellipsis,
        tuple((name, *cut_at_word(name, AUTHOR_LIMIT), tidy(name)) for name in named),
        len(paper.authors) - len(named),
        page_url(paper),
        hf_url(paper),
        safe_url(paper.abs_url),
        safe_url(paper.pdf_url),
        safe_url(paper.github_repo),
        safe_url(paper.project_page),
        _name(arxiv_category(paper) or ""),
        tuple(dict.fromkeys(name for name in map(_name, paper.sources) if name)),
        tidy(paper.title),
        tidy(paper.abstract),
    )


@lru_cache(maxsize=4_096)
def _term(text: str) -> str:
    """A query term as shown: cleaned, at most ``KEYWORD_LIMIT`` characters."""
    return clean(text)[:KEYWORD_LIMIT]


def _name(text: str) -> str | None:
    return clean(text)[:NAME_LIMIT] or None


def paper_view(match: Match, abstract: str = "full", show_sources: bool = False) -> PaperView:
    """The template view of one matched paper: cleaned, trimmed, highlighted; ``abstract``
    (one of :data:`~digest.models.ABSTRACT_MODES`) says how much of its abstract is shown;
    ``show_sources``: name the sources that listed it (when the digest reads several)."""
    paper = match.paper
    layout = _layout(paper, abstract)
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

    terms = map(_term, match.terms)
    return PaperView(
        key=paper.key,
        arxiv_id=paper.arxiv_id,
        title=title,
        title_html=to_html(title_pieces, " …" if title_cut else ""),
        short_title=short_title,
        url=layout.url,
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
        primary_category=layout.primary_category,
        sources=layout.sources if show_sources else (),
        abstract="".join(p for p, _ in abstract_pieces) + suffix,
        abstract_html=to_html(abstract_pieces, suffix) if abstract_pieces else Markup(""),
        abstract_trimmed=abstract_end < len(paper.abstract.rstrip()),
        terms=tuple(dict.fromkeys(t for t in terms if t)),
        **reason_of(match),
    )


def reason_of(match: Match) -> dict[str, Any]:
    """A similarity pick's ``like`` (the liked paper's title, cleaned and cut) and
    ``similarity`` (percent); both None for a keyword match."""
    if match.like is None:
        return {"like": None, "similarity": None}
    end, cut = cut_at_word(clean(match.like), SHORT_TITLE_LIMIT)
    like = clean(match.like)[:end] + (" …" if cut else "")
    return {"like": like, "similarity": percent(match.similarity)}


def percent(similarity: float | None) -> int:
    """A similarity (0..1) as a whole percentage, within 0-100."""
    return max(0, min(100, round(100 * (similarity or 0.0))))


def as_dict(context: Any) -> dict[str, Any]:
    """A context object (or a dict) as the dict a template renders with."""
    if isinstance(context, dict):
        return context
    return {f.name: getattr(context, f.name) for f in fields(context)}
