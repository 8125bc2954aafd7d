"""Building the RSS 2.0 and Atom feeds of listed papers, as bytes, with feedgen.

Pure: the same function makes the public feeds and each subscriber's private ones (a
subset of papers). Text is cleaned of what XML forbids, so one bad abstract cannot make a
whole feed unreadable.

Paper fields are third-party text and stay text in both formats. Atom says so itself
(``type="text"``, the default); RSS 2.0 has no such attribute and readers take its
``<title>`` and ``<description>`` as HTML, so there the text is HTML-escaped first (then
XML-escaped by the serialiser): ``a<b`` is written ``a&amp;lt;b``, which an HTML reader shows
as ``a<b``, never as a tag.

A feed's shell (all but its entries) is :mod:`digest.compose.feed_shell`'s.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from itertools import chain, compress, islice, repeat
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from feedgen.feed import FeedGenerator
from markupsafe import escape

from digest.compose.feed_entries import (
    NOT_XML,
    EntryContent,
    FeedEntryContext,
    Picked,
    categories,
    category_elements,
    html_text,
    primary_category,
    sources,
    xml_text,
)
from digest.compose.feed_shell import FeedMeta, Shells, generator
from digest.compose.feedback import feed_links
from digest.compose.origin import hf_url, page_url
from digest.models import Paper, arxiv_base_id

__all__ = ["FeedMeta", "FeedSet", "build_feeds", "entry_context", "html_text", "xml_text"]

_SAFE_URL = re.compile(r"https?://[!#-;=?-~]+", re.IGNORECASE)


def _url(url: str | None) -> str | None:
    """``url`` when it is http(s) and safe to put in an href as it is, else None
    (``javascript:``, ``data:``, relative or malformed links are never emitted)."""
    if url and _SAFE_URL.fullmatch(url.strip()):
        return url.strip()
    return None


def paper_link(paper: Paper, link: str) -> str:
    """Where an entry points: the paper's own page (see :func:`~digest.compose.origin.page_url`:
    its source's link, Hugging Face's page, arXiv's, its project page or its code), the
    first of them that is a safe http(s) URL; else the feed's own ``link``."""
    return _url(page_url(paper)) or link


def source_scheme(link: str) -> str:
    """The scheme of the source-name categories of a feed of the site ``link``: a ``tag:``
    URI (RFC 4151), ``tag:digest.example.org,2026:source``."""
    return f"tag:{urlsplit(link).hostname or 'localhost'},2026:source"


def paper_id(paper: Paper, link: str) -> str:
    """A paper's stable guid/id: its arXiv abs URL without version (a new version is the
    same entry), else a ``tag:`` URI (RFC 4151) from its key in the authority of the feed's
    ``link`` (``tag:example.org,2024:paper/title:…``)."""
    base = arxiv_base_id(paper.arxiv_id)
    if base and (url := _url(f"https://arxiv.org/abs/{base}")):
        return url
    host = urlsplit(link).hostname or "localhost"
    return f"tag:{host},2024:paper/{quote(paper.key, safe=':-._~', errors='surrogatepass')}"


def newest_first(entries: Iterable[tuple[date, Paper]], link: str) -> list[tuple[date, Paper]]:
    """``entries`` by listing date, newest first (stable within a date), each paper once:
    at its newest date, with the data seen there (the latest upvotes and text)."""
    seen: set[str] = set()
    unique: list[tuple[date, Paper]] = []
    for day, paper in sorted(entries, key=lambda e: e[0], reverse=True):
        guid = paper_id(paper, link)
        if guid not in seen:
            seen.add(guid)
            unique.append((day, paper))
    return unique


_ATOM_ENTRY = re.compile(rb"^  <entry>.*?^  </entry>\n", re.S | re.M)
_RSS_ITEM = re.compile(rb"^    <item>.*?^    </item>\n", re.S | re.M)
_ATOM_CLOSE, _RSS_CLOSE = b"  </entry>\n", b"    </item>\n"
#: What :meth:`FeedSet._template_mark` renders: a paper with every field the template sees.
_SAMPLE_DAY = date(2026, 1, 5)
_SAMPLE = Paper(
    key="2601.00001",
    title="Sample",
    abstract="A sample abstract.",
    authors=("Ada Okafor",),
    arxiv_id="2601.00001",
    upvotes=2,
    num_comments=2,
    ai_keywords=("sample",),
    github_repo="https://github.com/example/sample",
    project_page="https://example.org/sample",
    categories=("cs.LG", "stat.ML"),
    sources=("sample", "other"),
)
#: A pick's reason as placeholders (see :meth:`FeedSet._private`): the similarity as the
#: placeholder text where a number goes.
_SLOT_SIMILARITY = b"pdfeedslot9similarity9z"
_SLOTS = Picked("pdfeedslot9like9z", -1)
#: A private entry's queries as a placeholder (see :meth:`FeedSet._private`).
_QUERY_SLOT = ("pdfeedslot9queries9z",)
#: At most this many reasons' texts (and their fingerprints' words) are kept (then the
#: cache starts again).
_QUERY_VALUES = 50_000
#: Why each paper of a private feed was picked, by paper key: the queries it matched, or
#: the liked paper it is like (a similarity pick).
Reasons = Mapping[str, tuple[str, ...] | Picked]


def entry_context(
    day: date,
    paper: Paper,
    link: str,
    queries: Sequence[str] | Picked = (),
    private: bool = False,
) -> FeedEntryContext:
    """The context of ``feed/entry.html`` for ``paper`` listed on ``day``, in a feed of the
    site ``link``; ``queries`` the private feed's reason, the queries it matched or a
    :class:`Picked` (see :class:`FeedEntryContext`)."""
    picked = queries if isinstance(queries, Picked) else None
    queries = () if isinstance(queries, Picked) else queries
    return FeedEntryContext(
        title=xml_text(paper.title) or xml_text(paper.key),
        url=paper_link(paper, link),
        page_url=_url(page_url(paper)),
        hf_url=_url(hf_url(paper)),
        abs_url=_url(paper.abs_url),
        pdf_url=_url(paper.pdf_url),
        code_url=_url(paper.github_repo),
        project_url=_url(paper.project_page),
        authors=tuple(name for name in map(xml_text, paper.authors) if name),
        upvotes=paper.upvotes,
        comments=paper.num_comments,
        categories=categories(paper, xml_text),
        primary_category=primary_category(paper, xml_text),
        sources=sources(paper, xml_text),
        abstract=xml_text(paper.abstract),
        day=day,
        private=private,
        queries=tuple(dict.fromkeys(query for query in map(xml_text, queries) if query)),
        **_feedback(paper, link, private),
        like=None if picked is None else (xml_text(picked.like)[:300] or None),
        similarity=_similarity(picked),
    )


def _similarity(picked: Picked | None) -> int | None:
    """A pick's percentage (0-100); the placeholders' is their similarity slot."""
    if picked is None:
        return None
    if picked is _SLOTS:
        return _SLOT_SIMILARITY.decode()  # type: ignore[return-value]
    return max(0, min(100, picked.similarity))


def _feedback(paper: Paper, link: str, private: bool) -> dict[str, str | None]:
    """A private feed entry's feedback links (placeholders: see :func:`feed_links`)."""
    more, less = feed_links(link, paper.key) if private else (None, None)
    return {"more_url": _url(more), "less_url": _url(less)}


class FeedSet:
    """The entries of a set of papers rendered once, assembled into any number of feeds.

    feedgen renders every paper once (RSS item and Atom entry); a feed of any subset is then
    its shell (also feedgen's, cached per :class:`FeedMeta` and date) with the chosen
    fragments spliced in. A feed's ``<updated>`` (RSS ``<lastBuildDate>``) is its newest
    entry's, so its bytes, and the ETag served for them, change only when an entry does;
    ``updated`` dates an empty feed. Markup in text is escaped, so an entry's closing tag
    can only be its own, and in RSS escaped once more, since readers take RSS text as HTML
    (see the module's docstring).

    With ``content`` (the renderer of ``feed/entry.html``), each entry also carries that
    HTML, escaped into the XML (Atom ``<content type="html">``, RSS ``<content:encoded>``);
    a private feed's entries are made again for each reason (``reasons`` of :meth:`build`),
    once per paper and reason.
    """

    def __init__(
        self,
        entries: Iterable[tuple[date, Paper]],
        *,
        link: str,
        updated: datetime,
        tz: tzinfo = UTC,
        content: EntryContent | None = None,
    ) -> None:
        if updated.tzinfo is None or updated.utcoffset() is None:
            raise ValueError("updated must be timezone-aware")
        self.updated = updated
        self.entries = newest_first(entries, link)
        self.keys = [paper.key for _, paper in self.entries]
        self._when = [datetime.combine(day, time(0), tzinfo=tz) for day, _ in self.entries]
        everything = FeedMeta("all", link, None, None, "all")
        atom_fg = generator(everything, updated)
        rss_fg = generator(everything, updated, rss=True)
        for day, paper in self.entries:
            _add_entry(atom_fg, day, paper, link, tz, xml_text)
            _add_entry(rss_fg, day, paper, link, tz, html_text)
        self._atom = _ATOM_ENTRY.findall(atom_fg.atom_str(pretty=True)) if self.entries else []
        self._rss = _RSS_ITEM.findall(rss_fg.rss_str(pretty=True)) if self.entries else []
        if len(self._atom) != len(self.entries) or len(self._rss) != len(self.entries):
            raise RuntimeError("feedgen output did not split into one fragment per paper")
        # Each private feed has a description and id of its own: its shell is filled in.
        self._shells = Shells()
        self._link, self._content = link, content
        self._at: dict[str, list[int]] = {}  # key -> its entries (one, unless keys repeat)
        for i, key in enumerate(self.keys):
            self._at.setdefault(key, []).append(i)
        # (entry, queries, private) -> (RSS item, Atom entry)
        self._made: dict[tuple[int, tuple[str, ...] | Picked, bool], tuple[bytes, bytes]] = {}
        self._digests: list[bytes] | None = None
        self._mark: bytes | None = None
        self._slot_ok: bool | None = None
        self._query_values: dict[tuple[str, ...], bytes] = {}
        self._cut: dict[int, tuple[list[bytes], list[bytes]]] = {}
        self._words: dict[tuple[str, ...] | Picked, bytes] = {}  # a reason in a fingerprint

    def _entry(self, i: int, terms: tuple[str, ...] | Picked, private: bool) -> tuple[bytes, bytes]:
        """Entry ``i``'s RSS item and Atom entry, with their content for this reason."""
        made = self._made.get((i, terms, private))
        if made is None:
            rss, atom = self._rss[i], self._atom[i]
            if self._content is not None:
                day, paper = self.entries[i]
                html = self._content(entry_context(day, paper, self._link, terms, private))
                # XML-escaped once: a reader unescapes it back to our HTML, whose text the
                # template escaped (third-party text stays text).
                body = xml_escape(NOT_XML.sub(" ", html).strip()).encode("utf-8")
                rss = b"".join([rss[: -len(_RSS_CLOSE)], b"      <content:encoded>", body,
                                b"</content:encoded>\n", _RSS_CLOSE])  # fmt: skip
                atom = b"".join([atom[: -len(_ATOM_CLOSE)], b'    <content type="html">', body,
                                 b"</content>\n", _ATOM_CLOSE])  # fmt: skip
            made = self._made[i, terms, private] = (rss, atom)
        return made

    def _add_private(
        self, chosen: Sequence[int], reasons: Reasons, rss: list[bytes], atom: list[bytes]
    ) -> None:
        """Add the private entries ``chosen`` to the pieces ``rss`` and ``atom`` of a feed
        (:meth:`_private`; an entry filled with its queries as the pieces around them, so
        the feed's bytes are copied once, when joined)."""
        keys, values, cuts = self.keys, self._query_values, self._cut
        fill = None if self._content is not None else False
        for i in chosen:
            why = reasons.get(keys[i], ())
            if why and fill is not False and isinstance(why, tuple):
                if fill is None:
                    fill = self._queries_slot()
                value = (values.get(why) or self._query_value(why)) if fill else b""
                if value:  # else not filled in: made by _private
                    rss_cut, atom_cut = cuts.get(i) or self._cut_at_slot(i)
                    if len(rss_cut) == 2 and len(atom_cut) == 2:
                        rss += (rss_cut[0], value, rss_cut[1])
                        atom += (atom_cut[0], value, atom_cut[1])
                    else:
                        rss.append(value.join(rss_cut))
                        atom.append(value.join(atom_cut))
                    continue
            made = self._private(i, why)
            rss.append(made[0])
            atom.append(made[1])

    def _private(self, i: int, why: tuple[str, ...] | Picked) -> tuple[bytes, bytes]:
        """Entry ``i`` of a private feed. A pick's entry is made once per paper with the
        reason as placeholders, then each pick's title and percentage are filled in (each
        liker's feed has picks of its own: made per pick, a pass took ~0.1 s per liker).
        Likewise the queries a paper matched: one entry per paper, each feed's queries filled
        in (5,000 subscribers: 38,000 distinct (paper, queries) renderings for 500 papers),
        when the template prints them as ``feed/entry.html`` does (see :meth:`_queries_slot`)."""
        if not isinstance(why, Picked):
            if not why or self._content is None or not self._queries_slot():
                return self._entry(i, why, True)
            return self._fill_queries(i, why)
        if self._content is None:
            return self._entry(i, (), True)
        rss, atom = self._entry(i, _SLOTS, True)
        if _SLOTS.like.encode() not in rss:  # a template that does not print it as it is
            return self._entry(i, why, True)
        shown = xml_text(why.like)[:300]
        if not shown:  # no title to say: the entry says no reason, as rendering it does
            return self._entry(i, why, True)
        # Escaped as the template's autoescaping does (markupsafe: ``"`` is ``&#34;``).
        like = xml_escape(str(escape(shown))).encode("utf-8")
        percent = str(max(0, min(100, why.similarity))).encode()
        # The title last: its text is never searched for a slot.
        pairs = ((_SLOT_SIMILARITY, percent), (_SLOTS.like.encode(), like))
        for slot, value in pairs:
            rss, atom = rss.replace(slot, value), atom.replace(slot, value)
        return rss, atom

    def _fill_queries(self, i: int, why: tuple[str, ...]) -> tuple[bytes, bytes]:
        """Entry ``i`` made with :data:`_QUERY_SLOT`, ``why``'s queries in its place (see
        :meth:`_query_value`)."""
        value = self._query_value(why)
        if not value:  # no query left once cleaned: the entry says no reason
            return self._entry(i, (), True)
        rss_cut, atom_cut = self._cut_at_slot(i)
        return value.join(rss_cut), value.join(atom_cut)

    def _query_value(self, why: tuple[str, ...]) -> bytes:
        """``why``'s queries as the template prints them (escaped, joined by ", "),
        XML-escaped once more like its HTML; made once per reason."""
        value = self._query_values.get(why)
        if value is None:
            if len(self._query_values) >= _QUERY_VALUES:
                self._query_values.clear()
            shown = dict.fromkeys(q for q in map(xml_text, why) if q)
            value = xml_escape(", ".join(map(escape, shown))).encode("utf-8")
            self._query_values[why] = value
        return value

    def _cut_at_slot(self, i: int) -> tuple[list[bytes], list[bytes]]:
        """Entry ``i`` made with :data:`_QUERY_SLOT`, cut at the slot (once per entry)."""
        cut = self._cut.get(i)
        if cut is None:
            slot = _QUERY_SLOT[0].encode()
            rss, atom = self._entry(i, _QUERY_SLOT, True)
            cut = self._cut[i] = (rss.split(slot), atom.split(slot))
            del self._made[i, _QUERY_SLOT, True]  # its pieces are all it is used for
        return cut

    def forget_public(self) -> None:
        """Drop the public entries made so far: a pass of private feeds does not use them
        (875 papers: ~8 MB); a public feed built later makes them again."""
        for made in [made for made in self._made if not made[2]]:
            del self._made[made]

    def _queries_slot(self) -> bool:
        """Whether filling :data:`_QUERY_SLOT` makes the same entries as rendering each reason
        (checked once, on the first paper, for reasons of one to three queries with markup
        and repeats): an operator's template that counts or indexes the queries, or joins
        them otherwise, is rendered per reason."""
        if self._slot_ok is None:
            self._slot_ok = bool(self.entries)
            for why in (("a<b & c",), ("x", "\"y\" 'z'"), ("LLM", "title:x", "LLM", "q*")):
                if not self._slot_ok:
                    break
                direct = self._entry(0, why, True)
                self._slot_ok = self._fill_queries(0, why) == direct
                del self._made[0, why, True]
            self._query_values.clear()
        return self._slot_ok

    def _entry_digests(self) -> list[bytes]:
        """Each entry's digest: its fragments and everything its content is made from (its
        context), without making the content."""
        if self._digests is None:
            link, digests = self._link, []
            for (day, paper), rss, atom in zip(self.entries, self._rss, self._atom, strict=True):
                context = repr(entry_context(day, paper, link)).encode("utf-8", "surrogatepass")
                digests.append(hashlib.blake2b(rss + atom + context, digest_size=16).digest())
            self._digests = digests
        return self._digests

    def _template_mark(self) -> bytes:
        """What the content template makes of a sample paper, public and private: an edited
        template changes every fingerprint (the feeds are written again)."""
        if self._mark is None:
            made = (
                ""
                if self._content is None
                else "".join(
                    self._content(entry_context(_SAMPLE_DAY, _SAMPLE, self._link, q, bool(q)))
                    for q in ((), ("sample query",))
                )
            )
            self._mark = hashlib.blake2b(made.encode("utf-8", "surrogatepass")).digest()
        return self._mark

    def choose(
        self, keys: Collection[str] | None = None, limit: int | None = None
    ) -> Sequence[int]:
        """The entries with a key in ``keys`` (None: all), newest first, at most ``limit``."""
        chosen: Sequence[int]
        if keys is None:
            chosen = range(len(self.keys))
        elif len(keys) * 8 < len(self.keys):  # a few: looked up, not every key tried
            at = self._at
            chosen = sorted({i for key in keys if key in at for i in at[key]})
        else:  # tried in order, until ``limit`` are found
            found = compress(range(len(self.keys)), map(keys.__contains__, self.keys))
            return list(islice(found, limit))
        return chosen if limit is None else chosen[:limit]

    def fingerprint(
        self, meta: FeedMeta, chosen: Sequence[int], reasons: Reasons | None = None
    ) -> str:
        """What a feed of these entries (and reasons) would hold: equal fingerprints, equal
        feeds (an unchanged feed need not be written again)."""
        head = repr((meta.title, meta.link, meta.rss_url, meta.atom_url, meta.description,
                     meta.feed_id, meta.stylesheet)).encode("utf-8", "surrogatepass")  # fmt: skip
        digests = self._entry_digests()
        if reasons is None:
            parts = [digests[i] for i in chosen]
        else:  # a private feed: its content differs by the reasons, which are words
            words = self._words
            if len(words) >= _QUERY_VALUES:
                words.clear()
            whys = list(map(reasons.get, map(self.keys.__getitem__, chosen), repeat(())))
            for why in whys:
                if why not in words:
                    words[why] = repr(why).encode("utf-8", "surrogatepass")
            said = zip(map(digests.__getitem__, chosen), map(words.__getitem__, whys), strict=True)
            parts = [b"private", *chain.from_iterable(said)]
        return hashlib.blake2b(b"".join([head, self._template_mark(), *parts])).hexdigest()

    def build(
        self,
        meta: FeedMeta,
        keys: Collection[str] | None = None,
        limit: int | None = None,
        *,
        chosen: Sequence[int] | None = None,
        reasons: Reasons | None = None,
    ) -> tuple[bytes, bytes]:
        """``(rss, atom)`` with the papers whose key is in ``keys`` (None: all), newest first,
        at most ``limit`` of them (or the entries ``chosen`` by :meth:`choose`). ``reasons``:
        a private feed, each paper's content saying which queries it matched (by key)."""
        if chosen is None:
            chosen = self.choose(keys, limit)
        newest = self._when[chosen[0]] if chosen else self.updated  # entries: newest first
        rss_head, rss_tail, atom_head, atom_tail = self._shells.get(meta, newest)
        rss, atom = [rss_head], [atom_head]
        if reasons is None:
            for i in chosen:
                made = self._entry(i, (), False)
                rss.append(made[0])
                atom.append(made[1])
        else:
            self._add_private(chosen, reasons, rss, atom)
        rss.append(rss_tail)
        atom.append(atom_tail)
        return b"".join(rss), b"".join(atom)


def _add_entry(
    fg: FeedGenerator,
    day: date,
    paper: Paper,
    link: str,
    tz: tzinfo,
    text: Callable[[str], str],
) -> None:
    """``paper`` as an entry of ``fg``, its title and summary made by ``text`` (:func:`xml_text`
    for Atom, :func:`html_text` for RSS); author names are plain text in both (Atom
    ``<name>``, Dublin Core ``<dc:creator>``)."""
    when = datetime.combine(day, time(0), tzinfo=tz)
    entry = fg.add_entry(order="append")
    guid = paper_id(paper, link)
    entry.id(guid)
    entry.guid(guid, permalink=guid.startswith("http"))
    entry.title(text(paper.title) or text(paper.key))
    entry.link(href=paper_link(paper, link), rel="alternate")
    authors = [name for name in (xml_text(a) for a in paper.authors) if name]
    if authors:
        entry.author([{"name": name} for name in authors])
        entry.dc.dc_creator(", ".join(authors))
    entry.summary(text(paper.abstract) or text(paper.title) or text(paper.key))
    # Plain text, RSS and Atom alike; RSS takes the scheme as its ``domain``.
    if found := category_elements(paper, xml_text, source_scheme(link)):
        entry.category(found)
    entry.published(when)
    entry.updated(when)


def build_feeds(
    entries: Iterable[tuple[date, Paper]],
    *,
    title: str,
    link: str,
    rss_url: str,
    atom_url: str,
    description: str,
    updated: datetime,
    tz: tzinfo = UTC,
    content: EntryContent | None = None,
    stylesheet: str | None = None,
) -> tuple[bytes, bytes]:
    """The RSS 2.0 and the Atom feed of ``entries`` (listing date, paper): ``(rss, atom)``.

    Items are newest listing date first, in listing order within a date, and each paper
    appears once, at its newest listing date (see :func:`newest_first`). Each has its
    guid/id (:func:`paper_id`), title, link (:func:`paper_link`, http(s) only), authors
    (Atom ``<author><name>``, RSS ``<dc:creator>`` since RSS ``<author>`` must be an email
    address), the listing date at midnight in ``tz``, and the abstract; text is cleaned by
    :func:`xml_text`, and in RSS also HTML-escaped (:func:`html_text`). ``link`` is the
    site, ``rss_url``/``atom_url`` where the feeds are served. The feed is updated at
    its newest entry's date; ``updated`` dates an empty one and must be timezone-aware (else
    ValueError). With ``content`` (the ``feed/entry.html`` renderer) each entry also carries
    its HTML content (links, upvotes, keywords); with ``stylesheet`` (a same-origin path) the
    feeds name that XSLT stylesheet, which makes them a readable page in a browser. Output is
    deterministic for the same input. For many feeds over the same papers, use
    :class:`FeedSet`.
    """
    feeds = FeedSet(entries, link=link, updated=updated, tz=tz, content=content)
    return feeds.build(FeedMeta(title, link, rss_url, atom_url, description, stylesheet=stylesheet))
