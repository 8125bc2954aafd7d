"""RSS and Atom output: valid for feedparser whatever the listing held, stable ids, order."""

from __future__ import annotations

import html
import os
from dataclasses import fields
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import feedparser
import jinja2
import jinja2.meta
import lxml.html  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from digest.compose import (
    FeedEntryContext,
    FeedMeta,
    FeedSet,
    build_feeds,
    entry_context,
    environment,
    load_feed_entry,
    load_feed_stylesheet,
    paper_id,
    paper_link,
    xml_text,
)
from digest.compose.feed_entries import entry_content
from digest.compose.templates import FEED_ENTRY
from digest.models import Paper, paper_key

GOLDEN = Path(__file__).parent / "golden"
UPDATED = datetime(2026, 11, 20, 7, tzinfo=UTC)
SITE = "https://digest.example.org/"
D1, D2, D3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)
ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
ENTRY = load_feed_entry(None)  # the bundled feed/entry.html


def paper(arxiv_id: str | None, title: str, abstract: str = "An abstract.", **kw: Any) -> Paper:
    return Paper(
        key=paper_key(arxiv_id, title), title=title, abstract=abstract, arxiv_id=arxiv_id, **kw
    )


def build(entries: list[tuple[date, Paper]], **changes: Any) -> tuple[bytes, bytes]:
    options: dict[str, Any] = {
        "title": "Trending papers",
        "link": SITE,
        "rss_url": SITE + "feed.xml",
        "atom_url": SITE + "feed.atom",
        "description": "The papers of the last days",
        "updated": UPDATED,
        "content": ENTRY,
    }
    options.update(changes)
    return build_feeds(entries, **options)


def parse(data: bytes) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def feeds(entries: list[tuple[date, Paper]]) -> tuple[feedparser.FeedParserDict, ...]:
    """Both feeds of ``entries``, parsed, each checked to be well-formed (``bozo == 0``)."""
    rss, atom = build(entries)
    return parse(rss), parse(atom)


def rss_titles(data: bytes) -> list[str | None]:
    """Item titles as an RSS reader shows them: the XML's text taken as HTML (unescaped, not
    sanitised as feedparser would)."""
    return [
        html.unescape(item.findtext("title") or "")
        for item in ElementTree.fromstring(data).iter("item")
    ]


def atom_titles(data: bytes) -> list[str | None]:
    return [e.findtext(f"{ATOM}title") for e in ElementTree.fromstring(data).iter(f"{ATOM}entry")]


def check_golden(name: str, actual: bytes) -> None:
    """Compare with ``tests/golden/NAME``; ``UPDATE_GOLDEN=1`` rewrites it on purpose."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(actual)
    assert path.read_bytes() == actual, (
        f"{name} differs from its golden file; if the change is intended, run with UPDATE_GOLDEN=1"
    )


# -- order, identity, fields ----------------------------------------------------------------


def test_entries_newest_date_first_then_listing_order() -> None:
    a, b, c, d = (paper(f"2511.0000{i}", f"Paper {name}") for i, name in enumerate("abcd", 1))
    rss, atom = feeds([(D1, a), (D1, b), (D3, c), (D2, d)])
    for parsed in (rss, atom):
        assert [e.title for e in parsed.entries] == ["Paper c", "Paper d", "Paper a", "Paper b"]


def test_a_paper_listed_on_two_dates_appears_once_at_its_newest() -> None:
    old = paper("2511.00001", "Old title", upvotes=3)
    new = paper("2511.00001", "Revised title", upvotes=40)
    other = paper("2511.00002", "Other")
    rss, atom = feeds([(D1, old), (D1, other), (D2, new)])
    for parsed in (rss, atom):
        assert [e.title for e in parsed.entries] == ["Revised title", "Other"]
    assert atom.entries[0].published_parsed[:3] == (2026, 11, 19)


def test_fields_of_an_entry() -> None:
    p = paper(
        "2511.00001",
        "Diffusion Agents",
        "We study agents.",
        authors=("Zoë Ångström", "李 雷", "Bo Li"),
    )
    (rss, atom) = feeds([(D2, p)])
    for parsed in (rss, atom):
        (entry,) = parsed.entries
        assert entry.id == "https://arxiv.org/abs/2511.00001"
        assert entry.link == "https://huggingface.co/papers/2511.00001"
        assert entry.summary == "We study agents."
        assert entry.published_parsed[:6] == (2026, 11, 19, 0, 0, 0)
    assert [a["name"] for a in atom.entries[0].authors] == ["Zoë Ångström", "李 雷", "Bo Li"]
    assert rss.entries[0].author == "Zoë Ångström, 李 雷, Bo Li"  # from dc:creator
    assert atom.feed.updated_parsed[:4] == (2026, 11, 19, 0)  # its newest entry's


def test_a_feed_is_updated_at_its_newest_entry_so_its_bytes_change_only_with_an_entry() -> None:
    """The public feed's ETag is its bytes' hash: built again later (another hour, another
    day) over the same entries, it must be byte for byte the same."""
    old, new = paper("2511.00001", "Old"), paper("2511.00002", "New")
    first = build([(D1, old), (D2, new)])
    assert build([(D1, old), (D2, new)], updated=UPDATED.replace(day=25)) == first
    for parsed in map(parse, first):
        assert parsed.feed.updated_parsed[:4] == (2026, 11, 19, 0)
    assert b"<lastBuildDate>Thu, 19 Nov 2026 00:00:00 +0000</lastBuildDate>" in first[0]
    later = build([(D1, old), (D2, new), (D3, paper("2511.00003", "Newer"))])
    assert parse(later[1]).feed.updated_parsed[:3] == (2026, 11, 20)
    # A private subset is updated at its own newest entry; an empty feed at ``updated``.
    feed_set = FeedSet([(D1, old), (D2, new)], link=SITE, updated=UPDATED)
    meta = FeedMeta("Yours", SITE, None, None, "Mine")
    assert parse(feed_set.build(meta, {old.key})[1]).feed.updated_parsed[:3] == (2026, 11, 18)
    assert parse(feed_set.build(meta, set())[1]).feed.updated_parsed[:4] == (2026, 11, 20, 7)


def test_rss_has_no_author_element_since_it_must_be_an_email_address() -> None:
    rss, atom = build([(D1, paper("2511.00001", "T", authors=("Ada Okafor",)))])
    assert b'<guid isPermaLink="true">https://arxiv.org/abs/2511.00001</guid>' in rss
    assert b"<author>" not in rss and b"<dc:creator>Ada Okafor</dc:creator>" in rss
    assert b"<name>Ada Okafor</name>" in atom


def test_the_atom_feed_has_an_author_for_papers_without_one() -> None:
    # RFC 4287 §4.1.1: without a feed-level author, an entry without one is invalid.
    _, atom = feeds([(D1, paper("2511.00001", "Nobody wrote this"))])
    assert atom.feed.author_detail["name"] == "Trending papers"
    assert "authors" not in atom.entries[0] or atom.entries[0].authors == atom.feed.authors


def test_ids_are_stable_across_builds_and_edits() -> None:
    p = paper("2511.00001v2", "A paper")
    q = paper(None, "A paper without an arXiv id")
    first = [e.id for e in feeds([(D1, p), (D1, q)])[1].entries]
    edited = Paper(
        key=p.key, title="A paper, revised", abstract="New.", arxiv_id=p.arxiv_id, upvotes=99
    )
    edited_q = Paper(key=q.key, title=q.title.upper(), abstract="Other", upvotes=5)
    extra = paper("2511.00009", "Newcomer")
    rss, atom = feeds([(D2, extra), (D2, edited), (D2, edited_q)])
    assert [e.id for e in atom.entries][1:] == first == [e.id for e in rss.entries][1:]
    assert first[0] == "https://arxiv.org/abs/2511.00001"  # no version: the same paper


def test_a_paper_without_arxiv_id_gets_a_tag_uri() -> None:
    p = paper(None, "Naïve Bayes Is All You Need", project_page="https://nb.example/")
    guid = paper_id(p, SITE)
    assert guid.startswith("tag:digest.example.org,2024:paper/title:")
    assert guid.isascii() and " " not in guid
    assert paper_id(p, SITE) == paper_id(paper(None, "naive  bayes is all you need"), SITE)
    rss, atom = feeds([(D1, p)])
    assert atom.entries[0].id == rss.entries[0].id == guid
    assert f'<guid isPermaLink="false">{guid}</guid>'.encode() in build([(D1, p)])[0]
    assert rss.entries[0].link == atom.entries[0].link == "https://nb.example/"


def test_the_same_input_gives_the_same_bytes() -> None:
    entries = [(D1, paper("2511.00001", "A")), (D2, paper(None, "No id at all"))]
    assert build(entries) == build(list(entries))


def test_updated_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build([], updated=datetime(2026, 1, 1))


def test_an_empty_feed_is_still_valid() -> None:
    rss, atom = feeds([])
    assert rss.entries == [] and atom.entries == []
    assert rss.feed.title == atom.feed.title == "Trending papers"
    assert atom.feed.id == SITE + "feed.atom"


# -- hostile text and links -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("<b>bold</b> &amp; &lt;", "<b>bold</b> &amp; &lt;"),
        ("Line one\r\nBcc: x@evil.example", "Line one Bcc: x@evil.example"),
        ("abc\u202edcba\u2066x\u2069", "abc dcba x"),
        ("ctrl\x00\x01\x08\x0b\x0c\x1b\x7f\x9bend", "ctrl end"),
        ("lone \ud800 surrogate \udfff", "lone surrogate"),
        ("non-characters \ufffe\uffff", "non-characters"),
        ("]]> <![CDATA[ x ]]>", "]]> <![CDATA[ x ]]>"),
        ("Ünïcödé — 数学 — 🧪", "Ünïcödé — 数学 — 🧪"),
    ],
)
def test_nasty_titles_come_out_as_clean_text(title: str, shown: str) -> None:
    p = paper("2511.00003", title, abstract=title + " abstract", authors=(title,))
    rss, atom = build([(D1, p)])
    parse(rss), parse(atom)  # both still well-formed
    assert rss_titles(rss) == atom_titles(atom) == [shown]
    assert parse(atom).entries[0].title == shown  # Atom title is text: markup shown, not run
    assert b"<script" not in rss + atom  # escaped, never an element


def test_a_bad_abstract_does_not_spoil_the_others() -> None:
    bad = paper("2511.00001", "Bad", "\x00\x1b[31m\ud83d broken \ufffe")
    good = paper("2511.00002", "Good", "Fine.")
    rss, atom = feeds([(D1, bad), (D1, good)])
    for parsed in (rss, atom):
        assert [e.summary for e in parsed.entries] == ["[31m broken", "Fine."]


# What an RSS or Atom reader shows of a field: feedparser's value, and for a field it says
# is HTML, the text that HTML stands for (an HTML reader shows that, escapes resolved).
def shown(entry: feedparser.FeedParserDict, name: str) -> str:
    detail = entry[f"{name}_detail"]
    value: str = detail["value"]
    return html.unescape(value) if detail["type"] == "text/html" else value


def as_feedparser_reads(text: str) -> str:
    """``text`` with feedparser's own repair applied, as it does to every value of a UTF-8
    feed: text that is all Latin-1 and re-encodes to valid UTF-8 is taken for mojibake and
    decoded again ("Â¡" shows as "¡"; feedparser/mixin.py, "address common error"); not
    to Atom author names."""
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except UnicodeError:
        return text


RSS_TAGS = {"rss", "channel", "title", "link", "description", "docs", "generator", "language"}
RSS_TAGS |= {"lastBuildDate", "item", "guid", "pubDate", ATOM + "link"}
RSS_TAGS |= {"{http://purl.org/dc/elements/1.1/}creator", "category", CONTENT}
ATOM_TAGS = {"feed", "id", "title", "updated", "author", "name", "link", "generator"}
ATOM_TAGS |= {"subtitle", "entry", "summary", "published", "category", "content"}
ATOM_TAGS = {ATOM + t for t in ATOM_TAGS}
#: The HTML elements (and attributes) our feed/entry.html writes into an entry's content.
CONTENT_TAGS = {"p", "strong", "a"}


class ContentHTML(HTMLParser):
    """An entry's content HTML, as a browser-based reader parses it: its tags and
    attributes, and the text of each paragraph (character references resolved)."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.paragraphs: list[str] = []
        self._open = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "p":
            self.paragraphs.append("")
            self._open = True

    def handle_endtag(self, tag: str) -> None:
        self._open = self._open and tag != "p"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self._open:
            self.paragraphs[-1] += data


def contents(rss: bytes, atom: bytes) -> list[ContentHTML]:
    """The content HTML of every entry, RSS items first, then Atom entries, each checked
    to hold only our elements and http(s) links."""
    found = [item.findtext(CONTENT) or "" for item in ElementTree.fromstring(rss).iter("item")]
    for entry in ElementTree.fromstring(atom).iter(ATOM + "entry"):
        element = entry.find(ATOM + "content")
        assert element is not None and element.get("type") == "html"
        found.append(element.text or "")
    parsed = [ContentHTML(markup) for markup in found]
    for html_ in parsed:
        assert set(html_.tags) <= CONTENT_TAGS, html_.tags
        assert all(k == "href" and v and v.startswith("https://") for k, v in html_.attrs)
    return parsed


def check_only_our_elements(rss: bytes, atom: bytes) -> None:
    """Every XML element is one we write, and the RSS text readers take as HTML (titles,
    descriptions) holds no tag at all: no reader can find an element we did not write."""
    root = ElementTree.fromstring(rss)
    assert {e.tag for e in root.iter()} <= RSS_TAGS
    for element in root.iter():
        if element.tag in ("title", "description"):
            assert "<" not in (element.text or ""), element.text
    assert {e.tag for e in ElementTree.fromstring(atom).iter()} <= ATOM_TAGS


LISTING_MARKUP = [
    '<img src="https://tracker.example/p.gif?u=1" width=1 height=1>',
    '<a href="https://phish.example/login">Verify your account</a>',
    '<form action="https://evil.example/"><input name="password"></form>',
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">read</a>',
    '<iframe src="https://evil.example/"></iframe>',
    "<svg onload=alert(1)>",
    "a<b and c>d",
    "AT&T &amp; &lt;b&gt; &copy; &#60;b&#62;",
]


@pytest.mark.parametrize("markup", LISTING_MARKUP)
def test_listing_markup_is_shown_as_text_in_every_format(markup: str) -> None:
    p = paper("2511.00001", f"Title {markup}", f"Abstract {markup}", authors=(markup,))
    rss, atom = build([(D1, p)])
    check_only_our_elements(rss, atom)
    for parsed in (parse(rss), parse(atom)):
        (entry,) = parsed.entries
        assert shown(entry, "title") == f"Title {markup}"
        assert shown(entry, "summary") == f"Abstract {markup}"
        assert entry.author == markup


def test_private_feeds_carry_text_too() -> None:
    """A subscriber's feed (a subset through :class:`FeedSet`, its own meta naming their
    queries) is as safe as the public one."""
    p = paper("2511.00001", "<img src=x onerror=alert(1)>", "a<b and c>d")
    feed_set = FeedSet([(D1, p)], link=SITE, updated=UPDATED)
    meta = FeedMeta("Papers & <i>more</i>", SITE, None, None, 'Papers matching "<b>x</b>"')
    rss, atom = feed_set.build(meta, {p.key})
    check_only_our_elements(rss, atom)
    for parsed in (parse(rss), parse(atom)):
        assert shown(parsed.feed, "title") == "Papers & <i>more</i>"
        assert shown(parsed.feed, "subtitle") == 'Papers matching "<b>x</b>"'
        assert shown(parsed.entries[0], "title") == "<img src=x onerror=alert(1)>"
        assert shown(parsed.entries[0], "summary") == "a<b and c>d"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:x",
        "//evil.example/",
        'https://ok.example/"onmouseover="x',
        "https://ok.example/<script>",
    ],
)
def test_unsafe_links_are_never_emitted(url: str) -> None:
    p = paper(None, "Project", project_page=url, github_repo=url)
    rss, atom = build([(D1, p)])
    for data in (rss, atom):
        parsed = parse(data)
        assert parsed.entries[0].link == SITE
        assert b"javascript" not in data.lower() and b"data:" not in data
    assert paper_link(p, SITE) == SITE


def test_the_first_safe_link_wins() -> None:
    p = paper(None, "P", project_page="javascript:x", github_repo="https://github.com/a/b")
    assert paper_link(p, SITE) == "https://github.com/a/b"
    assert paper_link(paper("2511.00001", "P"), SITE) == "https://huggingface.co/papers/2511.00001"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\x00b", "a b"),
        ("  two\n lines ", "two lines"),
        ("bidi\u202eend", "bidi end"),
        ("tab\there", "tab here"),
        ("\ud800", ""),
        ("keep \u00e9 and \U0001f9ea", "keep \u00e9 and \U0001f9ea"),
    ],
)
def test_xml_text(raw: str, clean: str) -> None:
    assert xml_text(raw) == clean


NASTY = ["\ud800", "\udfff", "\ufffe", "\uffff", "\x00", "\x1b", "\x7f", "\x85", "\x9b"]
NASTY += ["\u202e", "\u2066", "\r", "\n", "\t", "<", ">", "&", "]]>", "\u2028", '"', "'"]
texts = st.lists(st.one_of(st.characters(), st.sampled_from(NASTY)), max_size=30).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    title=texts,
    abstract=texts,
    authors=st.lists(texts, max_size=3),
    arxiv_id=st.sampled_from([None, "2511.00001"]),
)
def test_any_text_makes_valid_feeds(
    title: str, abstract: str, authors: list[str], arxiv_id: str | None
) -> None:
    p = paper(arxiv_id, title, abstract, authors=tuple(authors))
    rss, atom = build([(D1, p)])
    parse(rss), parse(atom)
    assert rss_titles(rss) == atom_titles(atom) == [xml_text(title) or xml_text(p.key)]
    assert parse(rss).entries[0].id == parse(atom).entries[0].id == paper_id(p, SITE)


HTMLISH = ["<b>", "</b>", "<img src=x onerror=alert(1)>", "<a href='javascript:x'>", "</a>"]
HTMLISH += ["&amp;", "&lt;", "&#60;", "&#x3c;", "&copy;", "&nosuch;", "&", "<!--", "-->", "<?x?>"]
markup = st.lists(
    st.one_of(st.characters(), st.sampled_from(NASTY), st.sampled_from(HTMLISH)), max_size=30
).map("".join)


@settings(max_examples=200, deadline=None)
@given(title=markup, abstract=markup, authors=st.lists(markup, max_size=3))
def test_a_reader_shows_the_papers_text_whatever_it_is(
    title: str, abstract: str, authors: list[str]
) -> None:
    """Feed text is text: what feedparser shows (after its own unescaping of what it takes as
    HTML) is the paper's text, in RSS and Atom, and no element but ours is in the XML."""
    p = paper("2511.00001", title, abstract, authors=tuple(authors))
    rss, atom = build([(D1, p)])
    check_only_our_elements(rss, atom)
    names = [name for name in map(xml_text, authors) if name]
    for parsed in (parse(rss), parse(atom)):
        (entry,) = parsed.entries
        assert shown(entry, "title") == as_feedparser_reads(xml_text(title) or xml_text(p.key))
        summary = xml_text(abstract)
        assert shown(entry, "summary") == (as_feedparser_reads(summary) or shown(entry, "title"))
    if names:
        creator = parse(rss).entries[0].author  # dc:creator: plain text
        assert creator == as_feedparser_reads(", ".join(names))
        assert [a["name"] for a in parse(atom).entries[0].authors] == names  # not repaired
    # The entry's content (our HTML): the same text, in our elements only.
    for content in contents(rss, atom):
        if xml_text(abstract):
            assert xml_text(abstract) in content.paragraphs
        if names:
            assert content.paragraphs[0].startswith(", ".join(names[:10]))


# -- entry content (feed/entry.html) -------------------------------------------------------


def test_the_entry_context_is_pinned_and_the_template_uses_only_it() -> None:
    assert FEED_ENTRY == "feed/entry.html"
    assert [f.name for f in fields(FeedEntryContext)] == [
        "title", "url", "page_url", "hf_url", "abs_url", "pdf_url", "code_url", "project_url",
        "authors", "upvotes", "comments", "categories", "primary_category", "sources",
        "abstract", "day", "private", "queries", "more_url", "less_url", "like", "similarity",
    ]  # fmt: skip
    env = environment()
    source = env.loader.get_source(env, FEED_ENTRY)[0]  # type: ignore[union-attr]
    used = jinja2.meta.find_undeclared_variables(env.parse(source))
    assert used - set(env.globals) <= {f.name for f in fields(FeedEntryContext)}


RICH = paper(
    "2511.00001",
    "Diffusion Agents",
    "We study agents.",
    authors=("Ada Okafor", "Bo Li"),
    upvotes=42,
    num_comments=3,
    github_repo="https://github.com/ada/agents",
    project_page="https://agents.example/",
    ai_keywords=("diffusion", "agents", "<b>planning</b>", "agents", "\x00"),
)


def test_an_entry_carries_its_links_upvotes_and_categories() -> None:
    rss, atom = build([(D1, RICH)])
    for parsed in (parse(rss), parse(atom)):
        (entry,) = parsed.entries
        assert [t.term for t in entry.tags] == ["diffusion", "agents", "<b>planning</b>"]
        (shown_content,) = entry.content  # feedparser: RSS content:encoded, Atom content
        assert shown_content.type == "text/html"
        value = shown_content.value
        for href in (
            "https://huggingface.co/papers/2511.00001",
            "https://arxiv.org/abs/2511.00001",
            "https://arxiv.org/pdf/2511.00001",
            "https://github.com/ada/agents",
            "https://agents.example/",
        ):
            assert f'href="{href}"' in value
        assert "▲ 42 upvotes" in value and "3 comments" in value
        assert "Keywords: diffusion, agents, &lt;b&gt;planning&lt;/b&gt;" in value
        assert "Picked for you" not in value  # the public feed says no reason
    assert b'<category term="&lt;b&gt;planning&lt;/b&gt;"/>' in atom
    for content in contents(rss, atom):
        assert content.paragraphs[-1] == "Keywords: diffusion, agents, <b>planning</b>"
        assert "We study agents." in content.paragraphs


ARXIV_ONLY = paper(
    "2511.00003",
    "Sparse Routers for Agents",
    "We route tokens.",
    authors=("Chidi Mbeki",),
    link="https://arxiv.org/abs/2511.00003",
    categories=("cs.LG", "cs.CL", "stat.ML"),
    sources=("arxiv-ml",),
)
BOTH = paper(
    "2511.00004",
    "Diffusion Planners, Merged",
    "We plan with diffusion.",
    upvotes=7,
    link="https://huggingface.co/papers/2511.00004",
    categories=("cs.AI", "cs.LG"),
    ai_keywords=("planning",),
    sources=("hf", "arxiv-ml"),
)
FROM_A_FEED = Paper(
    key="doi:10.1000/neuro.1",
    title="Glia <i>talk</i> & listen",
    abstract="Astrocytes <b>modulate</b> synapses.",
    authors=("Dana Ørsted",),
    doi="10.1000/neuro.1",
    link="https://journal.example/articles/1?ref=rss",
    categories=("Neuroscience", "<script>x</script>", "cs.LG"),
    sources=("neuro", "<b>lab</b>"),
)


def test_entries_name_their_categories_and_sources_each_in_its_scheme() -> None:
    rss, atom = build([(D1, ARXIV_ONLY), (D1, BOTH), (D1, FROM_A_FEED)])
    check_only_our_elements(rss, atom)
    arxiv, source = "http://arxiv.org/schemas/atom", "tag:digest.example.org,2026:source"
    for parsed in (parse(rss), parse(atom)):
        only, both, feed = parsed.entries
        assert [(t.term, t.scheme) for t in only.tags] == [
            ("cs.LG", arxiv),
            ("cs.CL", arxiv),
            ("stat.ML", arxiv),
            ("arxiv-ml", source),
        ]
        assert [(t.term, t.scheme) for t in both.tags] == [
            ("cs.AI", arxiv), ("cs.LG", arxiv), ("planning", None), ("hf", source),
            ("arxiv-ml", source),
        ]  # fmt: skip
        # A feed's tags are its own words, not arXiv's, even one spelled like an arXiv class.
        assert [(t.term, t.scheme) for t in feed.tags] == [
            ("Neuroscience", None), ("<script>x</script>", None), ("cs.LG", None),
            ("neuro", source), ("<b>lab</b>", source),
        ]  # fmt: skip
    assert b'<category term="&lt;b&gt;lab&lt;/b&gt;" scheme="' + source.encode() + b'"/>' in atom
    assert b'<category domain="' + arxiv.encode() + b'">cs.LG</category>' in rss


def test_each_entry_links_its_own_page_and_says_where_it_came_from() -> None:
    rss, atom = build([(D1, ARXIV_ONLY), (D1, BOTH), (D1, FROM_A_FEED)])
    for parsed in (parse(rss), parse(atom)):
        only, both, feed = parsed.entries
        assert only.link == "https://arxiv.org/abs/2511.00003"
        assert both.link == "https://huggingface.co/papers/2511.00004"
        assert feed.link == "https://journal.example/articles/1?ref=rss"
    only, both, feed = contents(rss, atom)[:3]
    assert only.paragraphs[0] == "Chidi Mbeki · arXiv cs.LG · via arxiv-ml"
    assert only.paragraphs[-2] == "arXiv · PDF"  # not on Hugging Face: no page there
    assert both.paragraphs[0] == "▲ 7 upvotes · arXiv cs.AI · via hf, arxiv-ml"
    assert both.paragraphs[-2] == "Paper · arXiv · PDF"
    assert feed.paragraphs[0] == "Dana Ørsted · via neuro, <b>lab</b>"  # a tag is no category
    assert feed.paragraphs[-2] == "Paper"  # its own page; no arXiv, no PDF
    assert feed.paragraphs[-1] == "Keywords: Neuroscience, <script>x</script>, cs.LG"
    assert [v for _, v in only.attrs] == [
        "https://arxiv.org/abs/2511.00003",
        "https://arxiv.org/pdf/2511.00003",
    ]
    assert [v for _, v in feed.attrs] == ["https://journal.example/articles/1?ref=rss"]


def test_a_paper_without_any_page_points_at_the_site_and_links_nothing() -> None:
    bare = paper(None, "No links at all", sources=("neuro",))
    context = entry_context(D1, bare, SITE)
    assert context.url == SITE and context.page_url is None and context.pdf_url is None
    (content,) = contents(*build([(D1, bare)]))[:1]
    assert all("Paper" not in p for p in content.paragraphs), content.paragraphs


def test_a_private_feed_says_why_each_paper_was_picked() -> None:
    other = paper("2511.00002", "Robots", "Robots <script>x</script>.")
    feed_set = FeedSet([(D1, RICH), (D1, other)], link=SITE, updated=UPDATED, content=ENTRY)
    meta = FeedMeta("Yours", SITE, None, None, "Mine")
    reasons = {RICH.key: ("Diffusion", "agents"), other.key: ("<script>",)}
    rss, atom = feed_set.build(meta, reasons=reasons)
    for parsed in (parse(rss), parse(atom)):
        first, _ = (e.content[0].value for e in parsed.entries)
        assert "Picked for you:</strong> it matched Diffusion, agents." in first
    for content in contents(rss, atom):
        assert content.paragraphs[0].startswith("Picked for you: it matched ")
    assert contents(rss, atom)[1].paragraphs[0] == "Picked for you: it matched <script>."
    # The same entries without reasons (the public feed) say none; fingerprints differ.
    public = feed_set.build(meta)
    assert all("Picked" not in "".join(c.paragraphs) for c in contents(*public))
    chosen = feed_set.choose()
    assert feed_set.fingerprint(meta, chosen, reasons) != feed_set.fingerprint(meta, chosen)
    same = {RICH.key: ("Diffusion", "agents"), other.key: ("<script>",)}
    assert feed_set.fingerprint(meta, chosen, reasons) == feed_set.fingerprint(meta, chosen, same)


@pytest.mark.parametrize(
    ("source", "first", "second"),
    [
        ("{{ queries | join(', ') }}", "a&lt;b &amp; c, LLM", "x"),  # as the bundled one
        ("{{ queries | join(' / ') }}", "a&lt;b &amp; c / LLM", "x"),
        ("{{ queries | length }}: {{ queries | join(', ') }}", "2: a&lt;b &amp; c, LLM", "1: x"),
        ("{{ queries[0] }}{% if queries | length > 1 %}+{% endif %}", "a&lt;b &amp; c+", "x"),
    ],
)
def test_a_private_feeds_queries_are_as_each_template_prints_them(
    source: str, first: str, second: str
) -> None:
    """Entries are made once per paper with the queries filled in when the template prints
    them joined by ", " (as the bundled one does); any other template gets each reason
    rendered, so the feed is the same either way."""
    template = jinja2.Environment(autoescape=True).from_string(source)
    other = paper("2511.00002", "Robots")
    feed_set = FeedSet(
        [(D2, RICH), (D1, other)], link=SITE, updated=UPDATED, content=entry_content(template)
    )
    meta = FeedMeta("Yours", SITE, None, None, "Mine")
    reasons = {RICH.key: ("a<b & c", "LLM", "a<b & c"), other.key: ("x",)}
    rss, atom = feed_set.build(meta, reasons=reasons)
    for parsed in (parse(rss), parse(atom)):
        assert [e.content[0].value for e in parsed.entries] == [first, second]
    again = {RICH.key: ("x",), other.key: ("a<b & c", "LLM")}
    for parsed in map(parse, feed_set.build(meta, reasons=again)):
        assert [e.content[0].value for e in parsed.entries] == [second, first]


def test_a_reason_of_queries_that_clean_to_nothing_is_no_reason() -> None:
    feed_set = FeedSet([(D1, RICH)], link=SITE, updated=UPDATED, content=ENTRY)
    meta = FeedMeta("Yours", SITE, None, None, "Mine")
    plain = feed_set.build(meta, reasons={RICH.key: ()})
    assert feed_set.build(meta, reasons={RICH.key: ("\x01", " ")}) == plain
    assert all("Picked" not in "".join(c.paragraphs) for c in contents(*plain))


def test_entry_context_cleans_text_and_drops_unsafe_links() -> None:
    p = paper(None, "T\x00itle", "A\u202ebstract", project_page="javascript:x", upvotes=1)
    context = entry_context(D1, p, SITE, ("a\x1bb", "", "a\x1bb"), private=True)
    assert (context.title, context.abstract, context.queries) == ("T itle", "A bstract", ("a b",))
    assert context.project_url is None and context.url == SITE and context.private


# -- the page a browser shows (feed/feed.xsl) ----------------------------------------------


def browser_page(data: bytes) -> Any:
    """What a browser shows of a feed: the feed through the stylesheet its
    ``<?xml-stylesheet?>`` names (libxslt, as Chromium's), as an HTML document."""
    document = etree.fromstring(data)
    instruction = document.getprevious()
    assert isinstance(instruction, etree._XSLTProcessingInstruction)
    assert instruction.get("href") == "/feed.xsl" and instruction.get("type") == "text/xsl"
    xslt = etree.XSLT(etree.fromstring(load_feed_stylesheet(None)))
    return lxml.html.document_fromstring(str(xslt(document)))


@pytest.mark.parametrize("markup", ["Plain", *LISTING_MARKUP])
def test_a_browser_shows_a_feed_as_a_page_that_says_how_to_follow_it(markup: str) -> None:
    p = paper("2511.00001", f"Title {markup}", f"Abstract {markup}")
    public = build([(D1, p)], title=f"Papers {markup}", stylesheet="/feed.xsl")
    feed_set = FeedSet([(D1, p)], link=SITE, updated=UPDATED, content=ENTRY)
    private = feed_set.build(FeedMeta("Yours", SITE, None, None, "Mine", stylesheet="/feed.xsl"))
    for data, url in zip(public, (SITE + "feed.xml", SITE + "feed.atom"), strict=True):
        parse(data)  # the instruction changes nothing for a feed reader
        page = browser_page(data)
        assert page.findtext(".//h1") == f"Papers {xml_text(markup)}"
        assert "follow it in a feed reader" in page.text_content()
        assert page.find_class("address")[0].text_content() == url
        (link,) = page.find_class("entry-title")
        assert link.text_content().strip() == f"Title {xml_text(markup)}"
        assert link.get("href") == "https://huggingface.co/papers/2511.00001"
        assert page.find_class("summary")[0].text_content() == f"Abstract {xml_text(markup)}"
        assert not page.xpath("//script | //img | //iframe | //form | //svg")
    for data in private:
        page = browser_page(data)
        assert not page.find_class("address") and "address bar" in page.text_content()
        assert "private feed" in page.text_content()


# -- golden and feed sets -------------------------------------------------------------------


def test_golden_feeds() -> None:
    entries = [
        (
            D1,
            paper(
                "2511.00001",
                "Diffusion Agents Plan in Latent Space",
                "We study how diffusion agents plan.",
                authors=("Ada Okafor", "Zoë Ångström"),
                upvotes=12,
                github_repo="https://github.com/ada/plan",
                ai_keywords=("diffusion agents", "planning"),
            ),
        ),
        (
            D1,
            paper(None, "A <b>Paper</b> & No arXiv id", project_page="https://p.example/x?a=1&b=2"),
        ),
        (D2, paper("2511.00002", "Newest\u202e paper\x00", "Ab\x1bstract.", authors=("李 雷",))),
    ]
    rss, atom = build(entries)
    parse(rss), parse(atom)
    check_golden("feed.rss.xml", rss)
    check_golden("feed.atom.xml", atom)


def test_a_feed_set_builds_subsets_newest_first_and_capped() -> None:
    papers = [(D1, paper(f"2511.0000{i}", f"Paper {i}")) for i in range(5)]
    papers.append((D2, paper("2511.00009", "Newest")))
    feed_set = FeedSet(papers, link=SITE, updated=UPDATED)
    meta = FeedMeta("Yours", SITE, None, None, "Mine", feed_id="tag:x,2026:f")
    rss, atom = feed_set.build(meta, {"2511.00009", "2511.00001", "2511.00003"}, limit=2)
    for data in (rss, atom):
        assert [e.title for e in parse(data).entries] == ["Newest", "Paper 1"]
    assert parse(atom).feed.id == "tag:x,2026:f"
    # The whole set through the same shell equals build_feeds' output.
    whole = FeedMeta("T", SITE, SITE + "r", SITE + "a", "D")
    assert feed_set.build(whole) == build_feeds(
        papers,
        title="T",
        link=SITE,
        rss_url=SITE + "r",
        atom_url=SITE + "a",
        description="D",
        updated=UPDATED,
    )
