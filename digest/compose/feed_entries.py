"""Each feed entry's HTML content, made by the operator-overridable ``feed/entry.html``:
its documented context (:class:`FeedEntryContext`) and the function that renders it.

Pure once the template is loaded (by :mod:`digest.compose.templates`). The paper's fields are
third-party text: the context holds them as text, cleaned of what XML forbids, and the
template's autoescaping keeps them text in the HTML; the feed then escapes that HTML once
more into its XML (Atom ``<content type="html">``, RSS ``<content:encoded>``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from jinja2 import Template

from digest.compose.origin import ARXIV_SCHEME, arxiv_category, is_arxiv_category
from digest.compose.views import as_dict
from digest.models import Paper

# XML 1.0 §2.2 Char, less the C1 controls and bidi overrides: whatever remains is dropped.
NOT_XML = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\u2029\u202f-\u2065\u206a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_SPACES = re.compile(r"\s+")


def xml_text(text: str) -> str:
    """``text`` on one line with every character XML 1.0 forbids (controls, lone
    surrogates, U+FFFE/U+FFFF) and every bidi override removed."""
    return _SPACES.sub(" ", NOT_XML.sub(" ", text)).strip()


def html_text(text: str) -> str:
    """:func:`xml_text` of ``text``, HTML-escaped, for an RSS element that readers show as HTML
    (``<title>``, ``<description>``): what they show is then ``xml_text(text)``, as text."""
    return html.escape(xml_text(text), quote=False)


#: At most this many of a paper's categories (arXiv's or a feed's tags), and as many of its
#: listing keywords, become categories.
CATEGORY_LIMIT = 12


@dataclass(frozen=True, slots=True)
class FeedEntryContext:
    """Context of ``feed/entry.html``: one paper's entry content in the RSS and Atom feeds.

    Text is on one line, without control characters or bidi overrides; URLs are http(s)
    or None. Output HTML: the feed escapes it into its XML.
    """

    title: str
    url: str  #: where the entry points (its ``<link>``): the paper's page, else the site
    #: the paper's own page (a feed's entry page, Hugging Face's or arXiv's...); None: none
    page_url: str | None
    hf_url: str | None  #: the Hugging Face paper page, only when it is on Hugging Face
    abs_url: str | None  #: arXiv abstract page (arXiv papers only)
    pdf_url: str | None  #: arXiv PDF (arXiv papers only: a feed's paper has none)
    code_url: str | None  #: the code repository
    project_url: str | None  #: the project page
    authors: tuple[str, ...]  #: every author, in the listing's order
    upvotes: int
    comments: int
    #: its categories (arXiv's, primary first, or a feed's tags), then its listing keywords
    #: (each also a ``<category>``)
    categories: tuple[str, ...]
    primary_category: str | None  #: arXiv's primary category (``cs.LG``) of an arXiv paper
    sources: tuple[str, ...]  #: the names of the sources that listed it (also ``<category>``)
    abstract: str  #: the whole abstract
    day: date  #: the listing date the entry comes from
    #: a subscriber's private feed (True) or the public one (False)
    private: bool
    #: in a private feed, the subscriber's keyword queries (as they wrote them) that this
    #: paper matched: the reason it was picked; empty when their feed has no keywords, and
    #: always in the public feed
    queries: tuple[str, ...]
    #: in a private feed, the paper's "more like this" and "less like this" links (the file
    #: holds a placeholder token, replaced by each reader's own as ``digest serve`` serves
    #: it: see :mod:`digest.compose.feedback`); None in the public feed
    more_url: str | None = None
    less_url: str | None = None
    #: in a private feed, a similarity pick's reason (no ``queries`` then): the title of the
    #: liked paper it is nearest to (one line, at most 300 characters) and how similar, in
    #: percent (0-100); None otherwise
    like: str | None = None
    similarity: int | None = None


@dataclass(frozen=True, slots=True)
class Picked:
    """Why a private feed holds a similarity pick: the title of the liked paper it is
    nearest to, and how similar (percent, 0-100)."""

    like: str
    similarity: int


#: Renders a context into an entry's HTML content.
EntryContent = Callable[[FeedEntryContext], str]


def categories(paper: Paper, text: Callable[[str], str]) -> tuple[str, ...]:
    """The paper's categories (arXiv's or a feed's tags) then its listing keywords, cleaned
    by ``text``, each once, at most :data:`CATEGORY_LIMIT` of each."""
    own = [name for name in map(text, paper.categories) if name][:CATEGORY_LIMIT]
    keywords = [name for name in map(text, paper.ai_keywords) if name][:CATEGORY_LIMIT]
    return tuple(dict.fromkeys(own + keywords))


def sources(paper: Paper, text: Callable[[str], str]) -> tuple[str, ...]:
    """The names of the sources that listed ``paper``, cleaned by ``text``, each once."""
    return tuple(dict.fromkeys(name for name in map(text, paper.sources) if name))


def primary_category(paper: Paper, text: Callable[[str], str]) -> str | None:
    """The arXiv primary category of an arXiv paper (see :func:`arxiv_category`)."""
    return text(arxiv_category(paper) or "") or None


def category_elements(
    paper: Paper, text: Callable[[str], str], source_scheme: str
) -> list[dict[str, str]]:
    """The entry's ``<category>`` elements (feedgen's dicts): each category of
    :func:`categories` (an arXiv paper's arXiv categories in arXiv's own scheme), then each
    source name in ``source_scheme``."""
    arxiv = paper.arxiv_id is not None
    found = [
        {"term": term, "scheme": ARXIV_SCHEME}
        if arxiv and term in paper.categories and is_arxiv_category(term)
        else {"term": term}
        for term in categories(paper, text)
    ]
    return found + [{"term": name, "scheme": source_scheme} for name in sources(paper, text)]


def entry_content(template: Template) -> EntryContent:
    """The renderer of ``template`` (``feed/entry.html``) for :class:`FeedEntryContext`."""

    def render(context: FeedEntryContext) -> str:
        return template.render(as_dict(context))

    return render
