"""A feed's shell: everything of an RSS 2.0 and an Atom document but its entries, made by
feedgen (:func:`render_shell`), or (:class:`Shells`) made once per kind of feed and filled
in with each feed's own description and id.

Pure. A pass writes thousands of private feeds that differ only in those two values (and
their newest date); feedgen took ~1.4 ms a shell, filling one in takes microseconds, and
the bytes are the same (``tests/test_feeds.py`` compares the two on any text).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from datetime import datetime

from feedgen.feed import FeedGenerator

from digest.compose.cache import Cache
from digest.compose.feed_entries import NOT_XML, html_text, xml_text

GENERATOR = "paper-digest"

#: (rss head, rss tail, atom head, atom tail): the entries go between head and tail.
Shell = tuple[bytes, bytes, bytes, bytes]


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What differs between two feeds of the same papers: their own title, links and id."""

    title: str
    link: str  #: the site
    rss_url: str | None  #: where the RSS file is served (None: no self link)
    atom_url: str | None  #: where the Atom file is served (None: no self link)
    description: str
    feed_id: str | None = None  #: the Atom id; default ``atom_url``, else ``link``
    #: the same-origin path of the XSLT stylesheet that makes the feed a readable page in a
    #: browser (an ``<?xml-stylesheet?>`` instruction; feed readers ignore it); None: none
    stylesheet: str | None = None


def generator(meta: FeedMeta, updated: datetime, *, rss: bool = False) -> FeedGenerator:
    """A generator for the Atom output, or (``rss``) for the RSS output: text is then
    HTML-escaped (:func:`html_text`), as RSS readers take it as HTML."""
    text = html_text if rss else xml_text
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.id(meta.feed_id or meta.atom_url or meta.link)
    fg.title(text(meta.title) or "Papers")
    # RFC 4287 §4.1.1: a feed needs an author unless every entry has one; a paper
    # listed without authors would otherwise make the Atom feed invalid.
    fg.author({"name": xml_text(meta.title) or "Papers"})
    fg.subtitle(text(meta.description) or text(meta.title) or "Papers")
    # feedgen gives RSS the last link added: the site, not the feed itself.
    if meta.atom_url:
        fg.link(href=meta.atom_url, rel="self")
    fg.link(href=meta.link, rel="alternate")
    fg.language("en")
    fg.generator(GENERATOR)
    fg.updated(updated)
    fg.lastBuildDate(updated)
    return fg


def render_shell(meta: FeedMeta, updated: datetime) -> Shell:
    """The shell of an empty feed described by ``meta``, updated at ``updated``, by feedgen."""
    fg = generator(meta, updated, rss=True)
    plain = all(html_text(t) == xml_text(t) for t in (meta.title, meta.description))
    # Most titles have nothing to escape: then one generator makes both shells.
    atom = (fg if plain else generator(meta, updated)).atom_str(pretty=True)
    if meta.rss_url:
        fg.link(href=meta.rss_url, rel="self", replace=True)
        fg.link(href=meta.link, rel="alternate")
    rss = fg.rss_str(pretty=True)
    if meta.stylesheet:
        rss, atom = with_stylesheet(rss, meta.stylesheet), with_stylesheet(atom, meta.stylesheet)
    rss_at, atom_at = rss.rindex(b"  </channel>"), atom.rindex(b"</feed>")
    return rss[:rss_at], rss[rss_at:], atom[:atom_at], atom[atom_at:]


def with_stylesheet(document: bytes, href: str) -> bytes:
    """``document`` with an ``<?xml-stylesheet?>`` instruction for the XSLT at ``href``
    after its XML declaration (``href`` is quoted for a pseudo-attribute)."""
    declaration, newline, rest = document.partition(b"\n")
    quoted = html.escape(NOT_XML.sub("", href), quote=True).encode("utf-8")
    instruction = b'<?xml-stylesheet type="text/xsl" href="' + quoted + b'"?>'
    return b"".join([declaration, newline, instruction, newline, rest])


# Placeholders for a kind of feed's shell: text that every cleaning keeps as it is.
_DESCRIPTION, _ID = b"pdfeedslot9description9z", b"pdfeedslot9id9z"
_SLOTS = re.compile(b"(" + _DESCRIPTION + b"|" + _ID + b")")


def _escaped(text: str) -> bytes:
    """``text`` (no control characters, as :func:`xml_text` leaves it) as libxml2 writes
    an element's text: ``&``, ``<`` and ``>`` escaped, UTF-8."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode("utf-8")


class _Skeleton:
    """A kind of feed's shell, cut where its description and id go."""

    def __init__(self, shell: Shell) -> None:
        self.rss_head, self.rss_tail, self.atom_head, self.atom_tail = shell
        self.rss = _SLOTS.split(self.rss_head)  # its slots at odd places
        self.atom = _SLOTS.split(self.atom_head)

    def fits(self, with_id: bool) -> bool:
        """Whether the slots are where (and as often as) the feed's values go: a title or
        link that holds a placeholder's text is rendered by feedgen instead."""
        rss, atom = self.rss[1::2], self.atom[1::2]
        wanted = sorted([_DESCRIPTION, _ID] if with_id else [_DESCRIPTION])
        tails = self.rss_tail + self.atom_tail
        return rss == [_DESCRIPTION] and sorted(atom) == wanted and not _SLOTS.search(tails)

    def fill(self, meta: FeedMeta) -> Shell:
        """The shell of ``meta``'s feed: as :func:`generator` writes its subtitle (the
        description, else the title, else "Papers", cleaned) and id."""
        values = {
            _DESCRIPTION: _escaped(
                html_text(meta.description) or html_text(meta.title) or "Papers"
            ),
            _ID: _escaped(meta.feed_id or ""),
        }
        rss = b"".join(values[p] if n % 2 else p for n, p in enumerate(self.rss))
        values[_DESCRIPTION] = _escaped(
            xml_text(meta.description) or xml_text(meta.title) or "Papers"
        )
        atom = b"".join(values[p] if n % 2 else p for n, p in enumerate(self.atom))
        return rss, self.rss_tail, atom, self.atom_tail


class Shells:
    """Feed shells, each kind (all but description and id alike, same date) made once by
    feedgen with placeholders, then filled in per feed (see :class:`_Skeleton`)."""

    def __init__(self, size: int = 64) -> None:
        # False: a kind whose placeholders did not fit (rendered by feedgen each time)
        self._made: Cache[tuple[object, ...], _Skeleton | bool] = Cache(size)

    def get(self, meta: FeedMeta, updated: datetime) -> Shell:
        """The shell of ``meta``'s feed updated at ``updated``, as :func:`render_shell`
        makes it."""
        # An id that is not already clean text is left to feedgen (and lxml, which refuses
        # what XML forbids).
        if meta.feed_id and xml_text(meta.feed_id) != meta.feed_id:
            return render_shell(meta, updated)
        with_id = bool(meta.feed_id)
        key = (meta.title, meta.link, meta.rss_url, meta.atom_url, meta.stylesheet, with_id)
        skeleton = self._made.get((*key, updated))
        if skeleton is None:
            slots = replace(
                meta,
                description=_DESCRIPTION.decode(),
                feed_id=_ID.decode() if with_id else None,
            )
            made = _Skeleton(render_shell(slots, updated))
            skeleton = self._made.put((*key, updated), made if made.fits(with_id) else False)
        if not isinstance(skeleton, _Skeleton):
            return render_shell(meta, updated)
        return skeleton.fill(meta)
