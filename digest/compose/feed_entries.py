"""Each feed entry's HTML content, made by the operator-overridable ``feed/entry.html``:
its documented context (:class:`FeedEntryContext`) and the function that renders it.

Pure once the template is loaded (by :mod:`digest.compose.templates`). The paper's fields are
third-party text: the context holds them as text, cleaned of what XML forbids, and the
template's autoescaping keeps them text in the HTML; the feed then escapes that HTML once
more into its XML (Atom ``<content type="html">``, RSS ``<content:encoded>``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from jinja2 import Template

from digest.compose.views import as_dict
from digest.models import Paper

#: At most this many of a paper's listing keywords become categories.
CATEGORY_LIMIT = 12


@dataclass(frozen=True, slots=True)
class FeedEntryContext:
    """Context of ``feed/entry.html``: one paper's entry content in the RSS and Atom feeds.

    Text is on one line, without control characters or bidi overrides; URLs are http(s)
    or None. Output HTML: the feed escapes it into its XML.
    """

    title: str
    url: str  #: where the entry points (its ``<link>``): the paper's page, else the site
    hf_url: str | None  #: the Hugging Face paper page
    abs_url: str | None  #: arXiv abstract page
    pdf_url: str | None  #: arXiv PDF
    code_url: str | None  #: the code repository
    project_url: str | None  #: the project page
    authors: tuple[str, ...]  #: every author, in the listing's order
    upvotes: int
    comments: int
    categories: tuple[str, ...]  #: the listing's keywords for the paper (also ``<category>``)
    abstract: str  #: the whole abstract
    day: date  #: the listing date the entry comes from
    #: a subscriber's private feed (True) or the public one (False)
    private: bool
    #: in a private feed, the subscriber's keyword queries (as they wrote them) that this
    #: paper matched: the reason it was picked; empty when their feed has no keywords, and
    #: always in the public feed
    queries: tuple[str, ...]


#: Renders a context into an entry's HTML content.
EntryContent = Callable[[FeedEntryContext], str]


def categories(paper: Paper, text: Callable[[str], str]) -> tuple[str, ...]:
    """The paper's listing keywords as categories: cleaned by ``text``, each once, at most
    :data:`CATEGORY_LIMIT`."""
    found = dict.fromkeys(name for name in map(text, paper.ai_keywords) if name)
    return tuple(found)[:CATEGORY_LIMIT]


def entry_content(template: Template) -> EntryContent:
    """The renderer of ``template`` (``feed/entry.html``) for :class:`FeedEntryContext`."""

    def render(context: FeedEntryContext) -> str:
        return template.render(as_dict(context))

    return render
