"""Compose: turn selected papers into what a reader receives, as pure functions.

``render`` (Jinja2 templates to HTML and text bodies), ``message`` (MIME bytes and headers),
``feeds`` (RSS/Atom documents), ``tokens`` (signed links). Imports ``select`` and the bottom
layer (``models``, ``errors``, ``words``) only: no database, network, clock or filesystem.
"""

from digest.compose.feeds import (
    FeedMeta,
    FeedSet,
    build_feeds,
    paper_id,
    paper_link,
    xml_text,
)
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
from digest.compose.render import (
    DigestContext,
    EmailLinks,
    PaperView,
    Renderer,
    SubjectContext,
    environment,
    paper_view,
    segments,
    to_html,
    trim_abstract,
)
from digest.compose.tokens import (
    random_token,
)

__all__ = [
    "Body",
    "DigestContext",
    "EmailLinks",
    "FeedMeta",
    "FeedSet",
    "PaperView",
    "Renderer",
    "SubjectContext",
    "build_feeds",
    "build_message",
    "clean_for_smtp",
    "clean_header_text",
    "encode_body",
    "encoded_size",
    "environment",
    "list_id_for",
    "make_message_id",
    "paper_id",
    "paper_link",
    "paper_view",
    "quoted_printable",
    "random_token",
    "segments",
    "sender_address",
    "to_html",
    "trim_abstract",
    "xml_text",
]
