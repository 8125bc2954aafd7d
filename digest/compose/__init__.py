"""Compose: turn selected papers into what a reader receives, as pure functions.

``render`` (the Renderer: templates to HTML and text bodies), ``views`` (the template
contexts and paper views, the contract with operators' templates), ``text`` (cleaning,
trimming, highlighting), ``fragments`` (each paper's entries, rendered once and cached),
``shells`` (the CSS-inlined digest shells shared between subscribers), ``templates``
(finding and loading the templates: the one module here that reads files), ``cache`` (an
LRU dict), ``message`` (MIME bytes and headers), ``feeds`` (RSS/Atom documents),
``feed_entries`` (each feed entry's HTML content and its template context), ``origin``
(where a paper came from and which of its links to show: own page, Hugging Face, arXiv
category, source names), ``tokens``
(signed links), ``verp`` (the signed tokens of VERP envelope senders and mailto
unsubscribes). Imports ``select`` and the bottom layer (``models``, ``errors``, ``words``)
only: no database, network, clock or filesystem (except ``templates``, which reads the
template files).

``feeds``' names are imported on first use (``__getattr__``): it imports feedgen and lxml
(~5.6 MB of memory, and their start-up), which a run's worker, sending email only, never
uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from digest.compose.feed_entries import FeedEntryContext, Picked
from digest.compose.message import (
    Body,
    build_message,
    clean_for_smtp,
    clean_header_text,
    encode_body,
    encoded_size,
    list_id_for,
    make_message_id,
    quoted_printable,
    sender_address,
)
from digest.compose.render import Renderer
from digest.compose.templates import environment, load_feed_entry, load_feed_stylesheet
from digest.compose.text import segments, short_abstract, to_html, trim_abstract
from digest.compose.tokens import (
    random_token,
)
from digest.compose.verp import (
    TokenRef,
    delivery_token,
    read_token,
    tokens_in,
    unsubscribe_token,
    verp_address,
)
from digest.compose.views import (
    DigestContext,
    EmailLinks,
    PaperView,
    SubjectContext,
    paper_view,
)

if TYPE_CHECKING:
    from digest.compose.feeds import (
        FeedMeta,
        FeedSet,
        build_feeds,
        entry_context,
        paper_id,
        paper_link,
        xml_text,
    )

_FEEDS = frozenset(
    {"FeedMeta", "FeedSet", "build_feeds", "entry_context", "paper_id", "paper_link", "xml_text"}
)


def __getattr__(name: str) -> object:
    """``from digest.compose import X`` for a name of ``feeds``: imported the first time."""
    if name not in _FEEDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.feeds"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _FEEDS)


__all__ = [
    "Body",
    "DigestContext",
    "EmailLinks",
    "FeedEntryContext",
    "FeedMeta",
    "FeedSet",
    "PaperView",
    "Picked",
    "Renderer",
    "SubjectContext",
    "TokenRef",
    "build_feeds",
    "build_message",
    "clean_for_smtp",
    "clean_header_text",
    "delivery_token",
    "encode_body",
    "encoded_size",
    "entry_context",
    "environment",
    "list_id_for",
    "load_feed_entry",
    "load_feed_stylesheet",
    "make_message_id",
    "paper_id",
    "paper_link",
    "paper_view",
    "quoted_printable",
    "random_token",
    "read_token",
    "segments",
    "sender_address",
    "short_abstract",
    "to_html",
    "tokens_in",
    "trim_abstract",
    "unsubscribe_token",
    "verp_address",
    "xml_text",
]
