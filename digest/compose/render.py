"""Rendering one subscriber's digest email, HTML and text, from operator-overridable templates.

Templates come from the operator's ``templates_dir`` first, then the bundled defaults
(:mod:`digest.compose.templates`); each gets one documented context object
(:mod:`digest.compose.views`). Each paper's entries are rendered and CSS-inlined once and cached
(:mod:`digest.compose.fragments`), shells are shared between subscribers
(:mod:`digest.compose.shells`), so one email is mostly string joins; the HTML stays under
Gmail's clipping size by listing lower-ranked papers compactly.
"""

from __future__ import annotations

import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import css_inline
from markupsafe import Markup, escape

from digest.compose.cache import Cache
from digest.compose.feedback import FeedbackLinks
from digest.compose.fragments import Fragment, Fragments, link_piece, open_ended
from digest.compose.message import Body
from digest.compose.shells import Shell, Shells
from digest.compose.templates import TEMPLATES, load_templates
from digest.compose.text import clean, period_label
from digest.compose.views import (
    KEYWORD_LIMIT,
    DigestContext,
    EmailLinks,
    SubjectContext,
    as_dict,
    reason_of,
)
from digest.errors import RenderError
from digest.models import Match, Subscriber

if TYPE_CHECKING:
    from pathlib import Path  # an argument handed to templates.py, which reads the files

#: Gmail clips an HTML part over 102 KB; leave room for the transfer encoding's estimate error.
HTML_BUDGET = 90_000
_COMPACT_RESERVE = 1_000  # room for the shell's "also matching" heading once compact appears


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


class Renderer:
    """Renders digests with one set of templates; keep one per run to share its caches.

    ``templates_dir`` is tried before the bundled templates. ``html_budget`` is the most
    bytes the HTML part should take once encoded; ``cache_size`` bounds the caches of paper
    and compact fragments (least recently used go first; an entry is ~6 KB, so the default
    takes ~70 MB per process; for 100,000 bench subscribers 10,000 such entries rendered
    58% of the fragments 5,000 first-in-first-out ones did, 20,000 33%); the other caches
    hold at most 5,000 (templates per paper) or 2,000 (inlined shells) entries.
    ``show_sources``: each paper names the sources that listed it (for a digest reading
    several; with one, the name says nothing). Raises :class:`RenderError` when a template
    is missing or broken.
    """

    def __init__(
        self,
        templates_dir: Path | None = None,
        *,
        site_title: str = "Paper Digest",
        base_url: str = "http://localhost:8000",
        html_budget: int = HTML_BUDGET,
        cache_size: int = 12_000,
        show_sources: bool = False,
    ) -> None:
        loaded = load_templates(templates_dir)
        self.show_sources = show_sources
        self.site_title = site_title
        self.base_url = base_url
        self.html_budget = html_budget
        self.env = loaded.env
        self._templates = loaded.templates
        self.stylesheet = loaded.stylesheet
        # Only @media rules stay in <style> (dark mode, phones); the rest goes inline.
        inliner = css_inline.CSSInliner(
            keep_style_tags=False,
            keep_at_rules=True,
            minify_css=True,
            load_remote_stylesheets=False,
        )
        # Placeholders no listing or subscriber text can contain: fresh per renderer.
        nonce = secrets.token_hex(8)
        self._fragments = Fragments(
            self._render,
            inliner,
            self.css,
            nonce=nonce,
            cache_size=cache_size,
            show_sources=show_sources,
        )
        self._shell_maker = Shells(
            self._render, inliner, self.env, nonce=nonce, cache_size=cache_size
        )
        self._subjects: Cache[tuple[date, int, int, int, date | None], str] = Cache(1_000)

    @property
    def _shell_shared(self) -> bool:
        """Whether the HTML shell is shared between subscribers (see :func:`prints_only`)."""
        return self._shell_maker.shared

    @_shell_shared.setter
    def _shell_shared(self, shared: bool) -> None:
        self._shell_maker.shared = shared

    @property
    def _shells(self) -> Cache[str, str]:
        """The inlined HTML shells, by their rendering."""
        return self._shell_maker.cache

    def _render(self, key: str, context: Any) -> str:
        template = self._templates[key]
        try:
            return template.render(as_dict(context))
        except Exception as exc:  # an operator's template can fail in any way
            raise RenderError(TEMPLATES[key], f"{type(exc).__name__}: {exc}") from exc

    @property
    def css(self) -> str:
        return str(self.stylesheet)

    def subject(
        self,
        day: date,
        count: int,
        total_in_listing: int,
        since: date | None = None,
        matched: int | None = None,
    ) -> str:
        """The subject line of a digest showing ``count`` papers of ``matched`` (None: as
        many as it shows) (from ``email/subject.txt``)."""
        matched = count if matched is None else max(matched, count)
        key = (day, count, matched, total_in_listing, since)
        hit = self._subjects.get(key)
        if hit is None:
            label = period_label(since, day)
            context = SubjectContext(
                self.site_title, day, label, count, matched, total_in_listing, since
            )
            hit = self._subjects.put(key, clean(self._render("subject", context)))
        return hit

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
        one_off: bool = False,
        abstract: str = "full",
    ) -> RenderedEmail:
        """One subscriber's email for ``day``; ``matches`` best first.

        ``since``: the oldest listing date a scheduled digest covers (catch-up, weekly);
        the labels then name the period. ``one_off``: a ``digest send``, not a subscription
        (see :attr:`DigestContext.one_off`). ``abstract``: how much of each abstract to show
        (one of :data:`~digest.models.ABSTRACT_MODES`).

        The first ``max_papers`` matches go in (None: all), the rest are counted as "N more"
        with a link to ``links.archive_url``. The best-ranked are shown in full; when the
        rest would push the HTML part past ``html_budget``, those are listed compactly.
        Raises :class:`RenderError` when a template fails.
        """
        chosen = matches if max_papers is None else matches[: max(0, max_papers)]
        feedback = links.feedback is not None
        full = [self._fragments.get(m, "paper", abstract, feedback) for m in chosen]
        tails: dict[str, bytes] = {}  # each paper's signed token, encoded
        full_html, full_text = _with_links(full, chosen, links.feedback, tails)
        # The subject counts what the email shows: "10 new papers (25 matched)".
        subject = self.subject(day, len(chosen), total_in_listing, since, len(matches))
        context = self._context(
            subject,
            day=day,
            subscriber=subscriber,
            matched=len(matches),
            chosen=chosen,
            links=links,
            total_in_listing=total_in_listing,
            max_papers=max_papers,
            since=since,
            one_off=one_off,
        )
        shell = self._shell_maker.html(context)
        in_full = len(full)
        brief: tuple[list[bytes], list[bytes]] = ([], [])
        if shell.size + sum(map(len, full_html)) > self.html_budget:
            room = self.html_budget - shell.size - _COMPACT_RESERVE
            brief = self._compact(chosen, abstract, links.feedback, room, tails)
            in_full = _how_many_in_full(list(map(len, full_html)), list(map(len, brief[0])), room)
            context = replace(context, shown_count=in_full, compact_count=len(chosen) - in_full)
            shell = self._shell_maker.html(context)
            brief = (brief[0][in_full:], brief[1][in_full:])
        shown = (full_html[:in_full], full_text[:in_full])
        html_body, text_body = self._bodies(shell, context, shown, brief)
        return RenderedEmail(
            subject=subject,
            shown=in_full,
            compact=len(brief[0]),
            more=context.more_count,
            html_body=html_body,
            text_body=text_body,
        )

    def _compact(
        self,
        chosen: Sequence[Match],
        abstract: str,
        feedback: FeedbackLinks | None,
        room: int,
        tails: dict[str, bytes],
    ) -> tuple[list[bytes], list[bytes]]:
        """Every ``chosen`` paper's compact entry, encoded (HTML, text): with the reader's
        feedback links and a pick's reason, each email's own; without the links when even
        every paper listed compactly with them would not fit in ``room`` bytes (a digest of
        a couple of hundred papers: the links cost ~200 bytes an entry). ``tails``: the
        papers' encoded tokens made so far for this email (see :func:`_with_links`)."""
        get = self._fragments.get
        if feedback is not None:
            compact = [get(m, "compact", abstract, True) for m in chosen]
            brief = _with_links(compact, chosen, feedback, tails)
            if sum(map(len, brief[0])) <= room:
                return brief
        return _with_links([get(m, "compact", abstract) for m in chosen], chosen, None)

    def _context(
        self,
        subject: str,
        *,
        day: date,
        subscriber: Subscriber,
        matched: int,
        chosen: Sequence[Match],
        links: EmailLinks,
        total_in_listing: int,
        max_papers: int | None,
        since: date | None,
        one_off: bool,
    ) -> DigestContext:
        """The shell's context with every ``chosen`` paper in full, of ``matched`` papers."""
        titles = "; ".join(clean(m.paper.title) for m in chosen[:2])
        count = f"{len(chosen)} new paper{'' if len(chosen) == 1 else 's'}"
        if matched > len(chosen):
            count += f" ({matched} matched)"
        return DigestContext(
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
            matched_count=matched,
            shown_count=len(chosen),
            compact_count=0,
            more_count=matched - len(chosen),
            max_papers=max_papers,
            papers=Markup(self._shell_maker.slot_papers),
            compact=Markup(self._shell_maker.slot_compact),
            stylesheet=self.stylesheet,
            unsubscribe_url=links.unsubscribe_url,
            manage_url=links.manage_url,
            feed_url=links.feed_url,
            more_url=links.archive_url,
            browser_url=browser_url(links.archive_url, subscriber),
            since=since if since is not None and since < day else None,
            one_off=one_off,
            picked=any(m.like is not None for m in chosen),
        )

    def _bodies(
        self,
        shell: Shell,
        context: DigestContext,
        shown: tuple[Sequence[bytes], Sequence[bytes]],
        brief: tuple[Sequence[bytes], Sequence[bytes]],
    ) -> tuple[Body, Body]:
        """The HTML and text bodies: the shells with ``shown`` (the encoded HTML and text
        entries) in full, ``brief`` compact."""
        papers, compact = self._shell_maker.slot_papers, self._shell_maker.slot_compact
        html_body = self._shell_maker.assemble(
            shell,
            TEMPLATES["digest_html"],
            {papers: list(shown[0]), compact: list(brief[0])},
        )
        # Full text entries are separated by a blank line.
        papers_qp = [piece for t in shown[1] for piece in (b"\r\n", t)][1:]
        text_body = self._shell_maker.assemble(
            self._shell_maker.text(context),
            TEMPLATES["digest_text"],
            {papers: papers_qp, compact: list(brief[1])},
        )
        return html_body, text_body


def _with_links(
    fragments: Sequence[Fragment],
    matches: Sequence[Match],
    feedback: FeedbackLinks | None,
    tails: dict[str, bytes] | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """The encoded HTML and text entries of ``fragments`` (of ``matches``), each with this
    subscriber's feedback links in it (signed per paper, see :class:`FeedbackLinks`) and,
    for a similarity pick, its reason (the liked title and the percentage).

    A link is its prefix (the site's address, ``/more?token=``), encoded once per email,
    then the paper's token on a line of its own (soft line breaks around it): ``tails``
    keeps each paper's encoded token for the email (its compact entries sign no more)."""
    if not any(f.html_cut or f.text_cut for f in fragments):
        return [f.html_qp for f in fragments], [f.text_qp for f in fragments]
    tails = {} if tails is None else tails
    if feedback is not None:
        text_more, text_less = (link_piece(feedback.prefix(k)) for k in ("more", "less"))
        html_more, html_less = (link_piece(escape(feedback.prefix(k))) for k in ("more", "less"))
    html: list[bytes] = []
    text: list[bytes] = []
    for fragment, match in zip(fragments, matches, strict=True):
        if not (fragment.html_cut or fragment.text_cut):  # a template without the slots
            html.append(fragment.html_qp)
            text.append(fragment.text_qp)
            continue
        html_links: dict[bytes, bytes] = {}
        text_links: dict[bytes, bytes] = {}
        if feedback is not None:
            key = match.paper.key
            tail = tails.get(key)
            if tail is None:
                token = feedback.token(key)  # URL-safe base64 and "."
                tail = token.encode("ascii") + b"=\r\n" if len(token) < 76 else link_piece(token)
                tails[key] = tail
            html_links = {b"more": html_more + tail, b"less": html_less + tail}
            text_links = {b"more": text_more + tail, b"less": text_less + tail}
        if match.like is not None:
            reason = reason_of(match)
            like, similarity = reason["like"] or "", open_ended(str(reason["similarity"]))
            html_links |= {b"like": open_ended(str(escape(like))), b"sim": similarity}
            text_links |= {b"like": open_ended(like), b"sim": similarity}
        html.append(fragment.html_with(html_links))
        text.append(fragment.text_with(text_links))
    return html, text


def browser_url(archive_url: str | None, subscriber: Subscriber) -> str | None:
    """The archive page showing ``subscriber``'s email: ``archive_url`` with each query of
    their keywords as ``q`` and of their exclusions as ``x`` (none: every paper)."""
    if archive_url is None:
        return None
    params = [("q", q) for q in subscriber.keywords] + [("x", q) for q in subscriber.exclude]
    return f"{archive_url}?{urlencode(params)}" if params else archive_url


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
