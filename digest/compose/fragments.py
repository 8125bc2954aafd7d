"""Each paper's entry in a digest, HTML and text: rendered and CSS-inlined once per (paper,
terms), each set of highlights then filled into its slots; kept quoted-printable in LRU caches
bounded by bytes, equal pieces of different entries kept once.

A subscriber's "more like this" and "less like this" links differ in every email: the entry
is kept cut at them (:attr:`Fragment.html_cut`), each piece encoded apart and ended by a
soft line break, so an email joins its own encoded links in (:meth:`Fragment.html_with`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

import css_inline
from markupsafe import Markup, escape

from digest.compose.cache import Cache
from digest.compose.message import quoted_printable
from digest.compose.templates import STYLESHEET
from digest.compose.text import MARK
from digest.compose.views import paper_view, percent
from digest.errors import RenderError
from digest.models import Match

#: Renders the template of a key of :data:`~digest.compose.templates.TEMPLATES` with a context.
Render = Callable[[str, Any], str]
#: Bytes of each kind's cache of entries (see :class:`Fragments`).
CACHE_BYTES = 32 * 2**20


@dataclass(frozen=True, slots=True)
class Fragment:
    """One entry, quoted-printable: joined as is into the message (only the encoded form
    is kept, so twice as many fit in the same memory).

    An entry with feedback links is kept cut at them: ``html_cut`` and ``text_cut`` are
    encoded pieces, ``b"more"`` or ``b"less"`` at odd places (where that link goes), each
    other piece ending with a line break or a soft one (``=\r\n``); ``html_qp`` and
    ``text_qp`` are then the pieces without the links (for sizes only), joined when asked:
    kept as well, they doubled the bytes of the caches (~30 MB per worker at 100,000)."""

    html_whole: bytes
    text_whole: bytes
    html_cut: tuple[bytes, ...] = ()
    text_cut: tuple[bytes, ...] = ()

    @property
    def html_qp(self) -> bytes:
        """The HTML entry, without its links when it is cut."""
        return b"".join(self.html_cut[::2]) if self.html_cut else self.html_whole

    @property
    def text_qp(self) -> bytes:
        """The text entry, without its links when it is cut."""
        return b"".join(self.text_cut[::2]) if self.text_cut else self.text_whole

    @property
    def size(self) -> int:
        """Bytes of its pieces, each counted (pieces shared with other entries too)."""
        return (
            len(self.html_whole)
            + len(self.text_whole)
            + sum(map(len, self.html_cut))
            + sum(map(len, self.text_cut))
        )

    def html_with(self, links: dict[bytes, bytes]) -> bytes:
        """The HTML entry with ``links`` (``b"more"``/``b"less"`` -> the encoded link,
        see :func:`open_ended`) in their places."""
        return _joined(self.html_cut, links) if self.html_cut else self.html_whole

    def text_with(self, links: dict[bytes, bytes]) -> bytes:
        """The text entry with ``links`` in their places (see :meth:`html_with`)."""
        return _joined(self.text_cut, links) if self.text_cut else self.text_whole


def _joined(cut: tuple[bytes, ...], links: dict[bytes, bytes]) -> bytes:
    parts = list(cut)
    parts[1::2] = [links[slot] for slot in cut[1::2]]
    return b"".join(parts)


def link_piece(url: str) -> bytes:
    """``url`` as :func:`open_ended` encodes it, quicker for a link (printable ASCII, no
    space): only ``=`` is escaped, and soft line breaks keep lines within 76 characters."""
    if not (url.isascii() and url.isprintable()) or " " in url or url.startswith("."):
        return open_ended(url)
    qp = url.replace("=", "=3D").encode("ascii")
    lines: list[bytes] = []
    while len(qp) > 75:
        cut = 75
        while b"=" in qp[cut - 2 : cut] or qp[cut : cut + 1] == b".":
            cut -= 1
        lines.append(qp[:cut])
        qp = qp[cut:]
    lines.append(qp)
    return b"=\r\n".join(lines) + b"=\r\n"


def open_ended(text: str) -> bytes:
    """``text`` quoted-printable, as a piece the next piece continues on the same line:
    unless ``text`` ends with a newline, its last line ends with a soft line break (``=``
    and CRLF, at most 76 characters with it, never splitting an ``=XX``; no line starts
    with ``.``)."""
    qp = quoted_printable(text)
    if not text or text.endswith("\n"):
        return qp
    newline = qp.rfind(b"\r\n")
    start = 0 if newline < 0 else newline + 2
    last = qp[start:]
    if len(last) > 75:
        cut = 75
        while b"=" in last[cut - 2 : cut] or last[cut : cut + 1] == b".":
            cut -= 1
        last = last[:cut] + b"=\r\n" + last[cut:]
    return qp[:start] + last + b"=\r\n"


class Fragments:
    """The ``paper`` (full) and ``compact`` (brief) entries of one renderer's templates.

    ``render`` renders a template by its key; ``nonce`` makes the slot placeholders ones no
    listing text can contain; ``cache_size`` bounds the caches of entries (the per-paper
    renderings hold at most 5,000); ``show_sources`` names each paper's sources (see
    :func:`~digest.compose.views.paper_view`). Raises :class:`RenderError` when the
    stylesheet cannot be inlined.

    ``cache_bytes`` bounds each kind's cache of entries by their pieces' bytes (each piece
    counted in every entry holding it, so the memory held is at most that), the least
    recently used going first; ``cache_size`` the entries of the other caches. The text
    entry and the HTML after the links, the same for every set of highlights of a paper,
    are one object for all (10,000 bench subscribers: 10 of 31 MB of pieces, 0.8 distinct).
    """

    def __init__(
        self,
        render: Render,
        inliner: css_inline.CSSInliner,
        css: str,
        *,
        nonce: str,
        cache_size: int,
        cache_bytes: int = CACHE_BYTES,
        show_sources: bool = False,
    ) -> None:
        self._render = render
        self.show_sources = show_sources
        self._inliner = inliner
        self.css = css
        self._fragments: dict[str, Cache[Hashable, Fragment]] = {
            kind: Cache(cache_bytes, _weight) for kind in ("paper", "compact")
        }
        # Each distinct piece once (by its bytes), for as long as it is among the recent.
        self._pieces: Cache[bytes, bytes] = Cache(2 * cache_size)
        self._slot_title = f"pdslot{nonce}title"
        self._slot_abstract = f"pdslot{nonce}abstract"
        self._slot_author = f"pdslot{nonce}author"
        self._slot_terms = f"pdslot{nonce}terms"
        self._slot_more = f"pdslot{nonce}morez"
        self._slot_less = f"pdslot{nonce}lessz"
        self._terms_slottable = {"paper": True, "compact": True}
        # A similarity pick's reason in slots too: picks differ per subscriber (the liked
        # title, the percentage), and inlining CSS per pick cost ~2 ms each.
        self._slot_like = f"pdslot{nonce}likez"
        self._slot_similarity = f"pdslot{nonce}simz"
        self._reason_slottable = {"paper": True, "compact": True}
        # Where an entry is cut: each email fills its own links and reasons in.
        self._slots = {
            self._slot_more: b"more",
            self._slot_less: b"less",
            self._slot_like: b"like",
            self._slot_similarity: b"sim",
        }
        self._links = re.compile("(" + "|".join(self._slots) + ")")
        self._parts: dict[str, Cache[Hashable, tuple[str, str]]] = {
            kind: Cache(min(cache_size, 5_000)) for kind in ("paper", "compact")
        }
        try:
            probe = str(self._inliner.inline_fragment(f"{MARK}x</mark>", self.css))
        except css_inline.InlineError as exc:
            raise RenderError(STYLESHEET, f"CSS inlining failed: {exc}") from exc
        self._mark_open = probe[: probe.index("x</mark>")] if "x</mark>" in probe else MARK
        self._by_id: dict[str, Cache[tuple[int, str, bool], tuple[Match, Fragment]]] = {
            kind: Cache(cache_size) for kind in ("paper", "compact")
        }

    def get(
        self, match: Match, kind: str, abstract: str = "full", feedback: bool = False
    ) -> Fragment:
        """The fragments of ``match`` (``kind`` ``paper`` or ``compact``) showing so much of
        its abstract (one of :data:`~digest.models.ABSTRACT_MODES`), rendered once;
        ``feedback``: with places for the subscriber's feedback links (see
        :class:`Fragment`).

        Looked up by the identity of ``match`` first (a run hands the same objects to every
        subscriber of a query), then by its value: paper, highlight spans and terms.
        """
        by_id = self._by_id[kind]
        seen = by_id.get((id(match), abstract, feedback))
        if seen is not None and seen[0] is match:
            return seen[1]
        # A pick's reason is cut out like the links (each email fills its own in): one
        # fragment per paper for every pick of it, unless the template prints it its own way.
        slotted = self._reason_slottable[kind] and match.like is not None
        reason = (True, None) if slotted else _reason(match)
        key = (match.paper, match.spans, match.terms, abstract, feedback, *reason)
        cache = self._fragments[kind]
        hit = cache.get(key)
        if hit is None:
            made = self._make(match, kind, abstract, feedback)
            if slotted and not self._reason_slottable[kind]:  # found out while making it
                key = (match.paper, match.spans, match.terms, abstract, feedback, *_reason(match))
            hit = cache.put(key, made)
        by_id.put((id(match), abstract, feedback), (match, hit))
        return hit

    def _make(self, match: Match, kind: str, abstract: str, feedback: bool) -> Fragment:
        """One entry's HTML and text. What does not depend on the highlights (the template
        rendered and CSS-inlined, the text entry) is made once per (paper, terms, abstract
        mode); each set of highlights only fills the title, abstract and author slots."""
        view = paper_view(match, abstract, self.show_sources)
        parts = self._parts[kind]
        # Terms go in a slot too, when the templates only ever print them joined by ", ".
        slot_terms = self._terms_slottable[kind] and bool(view.terms)
        terms_key = bool(view.terms) if slot_terms else view.terms
        slot_reason = self._reason_slottable[kind] and view.like is not None
        reason = (True,) if slot_reason else (view.like, view.similarity)
        key = (match.paper, terms_key, abstract, feedback, *reason)
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
                more_url=self._slot_more if feedback else None,
                less_url=self._slot_less if feedback else None,
                **(self._reason_slots() if slot_reason else {}),
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
                    return self._make(match, kind, abstract, feedback)
            if slot_reason and not any(self._slot_like in t for t in (shell, text)):
                self._reason_slottable[kind] = False  # a template with its own way: per pick
                return self._make(match, kind, abstract, feedback)
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
        return self._encoded(html, text)

    def _encoded(self, html: str, text: str) -> Fragment:
        """The entry encoded, cut at its feedback links when it has any."""
        html_parts, text_parts = self._links.split(html), self._links.split(text)
        if len(html_parts) == 1 and len(text_parts) == 1:
            return Fragment(quoted_printable(html), self._shared(quoted_printable(text)))
        html_cut, text_cut = self._cut(html_parts, 1), self._cut(text_parts, 0)
        return Fragment(b"", b"", tuple(html_cut), tuple(text_cut))

    def _cut(self, parts: list[str], own: int) -> list[bytes]:
        """Pieces split at the links encoded: each literal with :func:`open_ended` (the last
        as it is: it ends with a newline), each link's place as ``b"more"``/``b"less"``;
        the pieces from the ``own``-th on shared (:meth:`_shared`)."""
        last = len(parts) - 1
        pieces = [
            self._slots[part]
            if i % 2
            else (quoted_printable(part) if i == last else open_ended(part))
            for i, part in enumerate(parts)
        ]
        return pieces[:own] + [self._shared(piece) for piece in pieces[own:]]

    def _shared(self, piece: bytes) -> bytes:
        """``piece``, or the equal piece of an entry made earlier (kept once). Not for the
        HTML before the links, which holds the highlights: seldom the same, its copies
        kept here outlived their entries (100,000 bench subscribers: 31 MB)."""
        found = self._pieces.get(piece)
        return self._pieces.put(piece, piece) if found is None else found

    def _reason_slots(self) -> dict[str, Any]:
        """A pick's reason as placeholders (the percentage too: a string where an int goes)."""
        return {"like": self._slot_like, "similarity": self._slot_similarity}

    def _marked(self, html: Markup) -> str:
        """Highlighted HTML with the highlight's inlined style (``.hl`` in the stylesheet)."""
        return str(html).replace(MARK, self._mark_open)


def _weight(fragment: Fragment) -> int:
    """What an entry counts against :data:`CACHE_BYTES`: its pieces and ~200 bytes of
    key and objects."""
    return fragment.size + 200


def _reason(match: Match) -> tuple[object, object]:
    """What a similarity pick's entry shows of its reason (None, None: a keyword match)."""
    if match.like is None:
        return None, None
    return match.like, percent(match.similarity)
