"""The pure side of the feed source: HTML reduced to text (tables and properties), author
strings split, charsets guessed, and what parse_feed refuses."""

from __future__ import annotations

import codecs
import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from digest.errors import SourceError
from digest.sources.feed import ParsedFeed, parse_feed
from digest.sources.feed_text import (
    decode_body,
    feeds_named_by,
    html_block,
    html_line,
    person,
    split_authors,
)

FEED_URL = "https://feeds.example.org/lab/latest.rss"
UTC_ZONE = ZoneInfo("UTC")


def parse(body: bytes, *, content_type: str | None = None, tz: ZoneInfo = UTC_ZONE) -> ParsedFeed:
    return parse_feed(
        body,
        name="lab",
        url=FEED_URL,
        content_type=content_type,
        timezone=tz,
        fetched=date(2026, 12, 4),
    )


def rss(items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://feeds.example.org/</link><description>d</description>{items}"
        "</channel></rss>"
    ).encode()


@pytest.mark.parametrize(
    ("markup", "line"),
    [
        ("<i>Tiny</i> models &amp; <script>alert(1)</script>scenes", "Tiny models & scenes"),
        ("A&nbsp;B &eacute;t&#233; &#x2014; C", "A B été — C"),
        ("n < k and 2<3", "n < k and 2<3"),
        ("<p>one</p><p>two</p>", "one two"),
        ("<STYLE>p {}</STYLE><B>Bold</B>", "Bold"),
        ("x<!-- a comment -->y<?pi?>z", "xyz"),
        ("<svg><text>drawn</text></svg>shown", "shown"),
        ("tab\there\x00 and\u202e bidi", "tab here and bidi"),
        ("", ""),
    ],
)
def test_html_line_is_the_text_a_reader_sees(markup: str, line: str) -> None:
    assert html_line(markup) == line


@pytest.mark.parametrize(
    ("markup", "block"),
    [
        ("<p>One <b>two</b></p><p>Three</p>", "One two\n\nThree"),
        ("line one<br>line two<br/><br/>next paragraph", "line one line two\n\nnext paragraph"),
        ("<ul><li>a</li><li>b</li></ul>after", "a\n\nb\n\nafter"),
        ("<h2>Title</h2>\n\n  body   text\n wrapped", "Title\n\nbody text wrapped"),
        ("<div><script>x()</script></div>", ""),
    ],
)
def test_html_block_keeps_paragraphs(markup: str, block: str) -> None:
    assert html_block(markup) == block


TAGS = ["i", "b", "em", "p", "div", "a", "span", "img", "br", "sub", "sup", "li", "h1", "x-y"]
WORDS = st.from_regex(r"[a-z]{2,8}", fullmatch=True)
HIDDEN = "QQHIDDENQQ"


@st.composite
def fragments(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """HTML mixing words, tags (with attributes, unclosed, self-closing) and hidden script
    or style content; returns the markup, the visible words and the tags used."""
    markup: list[str] = []
    words: list[str] = []
    tags: list[str] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["word", "open", "close", "empty", "hidden"]))
        if kind == "word":
            word = draw(WORDS)
            words.append(word)
            markup.append(f" {word} ")
        elif kind == "hidden":
            name = draw(st.sampled_from(["script", "style"]))
            markup.append(f"<{name}>{HIDDEN} <b>{HIDDEN}</b></{name}>")
            tags.append(name)
        else:
            name = draw(st.sampled_from(TAGS))
            tags.append(name)
            attrs = draw(st.sampled_from(["", ' class="c"', " onclick='alert(1)'", " href=x"]))
            markup.append(
                {"open": f"<{name}{attrs}>", "close": f"</{name}>", "empty": f"<{name}{attrs}/>"}[
                    kind
                ]
            )
    return "".join(markup), words, tags


@given(fragments())
@settings(max_examples=100, deadline=None)
def test_no_tag_of_the_input_survives_as_markup(case: tuple[str, list[str], list[str]]) -> None:
    markup, words, tags = case
    for reduce in (html_line, html_block):
        text = reduce(markup)
        assert "<" not in text and ">" not in text
        assert HIDDEN not in text
        for word in words:
            assert word in text
        for tag in tags:
            assert f"<{tag}" not in text
    line = html_line(markup)
    assert "\n" not in line and "  " not in line and line == line.strip()
    assert "\n\n\n" not in html_block(markup)


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_text_reduces_to_clean_text(raw: str) -> None:
    line = html_line(raw)
    assert line == line.strip() and "  " not in line and "\n" not in line
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e]", line)
    assert "\n\n\n" not in html_block(raw)


@given(st.binary(max_size=600))
@settings(max_examples=200, deadline=None)
def test_any_bytes_give_a_feed_or_a_source_error(body: bytes) -> None:
    try:
        parsed = parse(body)
    except SourceError as exc:
        assert exc.url == FEED_URL
    else:
        assert all(paper.title for _, paper in parsed.entries)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Ada Okafor, Bo Chen and Cy Diaz", ["Ada Okafor", "Bo Chen", "Cy Diaz"]),
        ("Ada Okafor & Bo Chen", ["Ada Okafor", "Bo Chen"]),
        ("Okafor, Ada", ["Okafor, Ada"]),
        ("Okafor, Ada B.", ["Okafor, Ada B."]),
        ("Okafor, Ada; Chen, Bo", ["Okafor, Ada", "Chen, Bo"]),
        ("Ada Okafor, Bo Chen, et al.", ["Ada Okafor", "Bo Chen"]),
        ("Ada Okafor et al", ["Ada Okafor"]),
        ("Rand Anderson", ["Rand Anderson"]),
        ("The Invented Consortium", ["The Invented Consortium"]),
    ],
)
def test_author_strings_are_split_into_names(text: str, names: list[str]) -> None:
    assert split_authors(text) == names


SAMPLE = "<t>Größe — “naïve”</t>"


@pytest.mark.parametrize(
    ("body", "content_type", "text", "warned"),
    [
        (SAMPLE.encode("utf-8"), "text/xml; charset=iso-8859-1", SAMPLE, True),
        (SAMPLE.encode("cp1252"), "application/xml; charset=UTF-8", SAMPLE, True),
        (SAMPLE.encode("cp1252"), "text/xml; charset=windows-1252", SAMPLE, False),
        (codecs.BOM_UTF16_LE + SAMPLE.encode("utf-16-le"), "text/xml", SAMPLE, False),
        (SAMPLE.encode("utf-16-be"), "application/xml; charset=UTF-16BE", SAMPLE, False),
        (b'<?xml version="1.0" encoding="latin-1"?><t>\xe9</t>', None, None, False),
        (b"<t>plain ascii</t>", "text/xml; charset=iso-8859-1", "<t>plain ascii</t>", False),
        (SAMPLE.encode("utf-8"), "text/xml; charset=x-no-such-charset", SAMPLE, True),
    ],
)
def test_the_charset_is_the_one_the_bytes_are_in(
    body: bytes, content_type: str | None, text: str | None, warned: bool
) -> None:
    decoded, warnings = decode_body(body, content_type)
    expected = text if text is not None else '<?xml version="1.0" encoding="latin-1"?><t>é</t>'
    assert decoded == expected
    assert bool(warnings) is warned, warnings


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", None, "the response is empty, not an RSS/Atom feed"),
        (b" \n\t", "application/rss+xml", "the response is empty, not an RSS/Atom feed"),
        (b'{"items": []}', "application/json", "not an RSS/Atom feed (not well-formed"),
        (
            b'<?xml version="1.0"?><urlset><url><loc>https://x.example/</loc></url></urlset>',
            "application/xml",
            "not an RSS/Atom feed (no RSS or Atom element found)",
        ),
        (
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>cut',
            "application/rss+xml",
            "not an RSS/Atom feed (no element found at line 1)",
        ),
        (
            b"<html><body><p>Moved</p></body></html>",
            None,
            "this is an HTML page, not an RSS/Atom feed: check the URL",
        ),
    ],
)
def test_what_is_not_a_feed_is_a_source_error(
    body: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(SourceError) as caught:
        parse(body, content_type=content_type)
    assert caught.value.url == FEED_URL
    assert message in caught.value.reason
    assert caught.value.hint


def test_an_html_page_without_a_feed_link_says_what_a_feed_address_looks_like() -> None:
    with pytest.raises(SourceError) as caught:
        parse(b"<!doctype html><title>Lab</title><p>News</p>", content_type="text/html")
    assert caught.value.hint == (
        "use the address of the feed itself (often ending in .rss, .xml, .atom or /feed),"
        " not of a web page"
    )


def test_the_feeds_a_page_names_are_resolved() -> None:
    page = (
        '<link rel="stylesheet" href="/s.css"><link rel="alternate" type="text/html" href="/x">'
        '<LINK REL="Alternate" TYPE="application/atom+xml" HREF="atom.xml">'
        "<link rel='alternate' type='application/rss+xml' href='https://cdn.example/f.rss'>"
    )
    assert feeds_named_by(page, FEED_URL) == [
        "https://feeds.example.org/lab/atom.xml",
        "https://cdn.example/f.rss",
    ]


def test_entries_without_title_or_link_are_skipped_and_a_link_stands_for_a_title() -> None:
    parsed = parse(
        rss(
            "<item><description>Only words.</description></item>"
            "<item><link>/untitled/4</link><description>Has a link.</description></item>"
            "<item><title>   </title><guid>urn:uuid:1</guid></item>"
        )
    )
    assert parsed.skipped == 2
    [(day, paper)] = parsed.entries
    assert day == date(2026, 12, 4)
    assert paper.title == "https://feeds.example.org/untitled/4"
    assert paper.abstract == "Has a link."
    assert parsed.warnings == (
        "entry 0: no title and no link, skipped",
        "entry 1 (https://feeds.example.org/untitled/4): no title: its link stands for it",
        "entry 2: no title and no link, skipped",
    )


def test_an_atom_bare_date_and_a_date_without_zone() -> None:
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
    <id>urn:a</id><updated>2026-12-04T00:00:00Z</updated>
    <entry><title>Bare</title><id>urn:a:1</id><link href="https://a.example/1"/>
      <published>2026-12-02</published></entry>
    <entry><title>No zone</title><id>urn:a:2</id><link href="https://a.example/2"/>
      <updated>2026-12-02T23:30:00</updated></entry>
    </feed>"""
    auckland = ZoneInfo("Pacific/Auckland")
    parsed = parse(atom, content_type="application/atom+xml", tz=auckland)
    (bare_day, bare), (zoneless_day, zoneless) = parsed.entries
    assert bare_day == date(2026, 12, 2)
    assert bare.published == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)  # midnight there
    assert zoneless.published == datetime(2026, 12, 2, 23, 30, tzinfo=UTC)  # taken as UTC
    assert zoneless_day == date(2026, 12, 3)


def test_papers_of_a_day_and_the_source_name() -> None:
    parsed = parse(
        rss(
            "<item><title>One</title><link>https://a.example/1</link>"
            "<pubDate>Wed, 02 Dec 2026 12:00:00 GMT</pubDate></item>"
            "<item><title>Two</title><link>https://a.example/2</link>"
            "<pubDate>Thu, 03 Dec 2026 12:00:00 GMT</pubDate></item>"
        )
    )
    assert [p.title for p in parsed.papers_of(date(2026, 12, 3))] == ["Two"]
    assert parsed.papers_of(date(2026, 12, 1)) == ()
    assert {p.sources for _, p in parsed.entries} == {("lab",)}


def test_an_arxiv_doi_names_the_arxiv_paper() -> None:
    parsed = parse(
        rss(
            '<item xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/">'
            "<title>Preprint by its DOI</title><link>https://blog.example.org/p/3</link>"
            "<prism:doi>10.48550/arXiv.2612.07777</prism:doi></item>"
        )
    )
    [(_, paper)] = parsed.entries
    assert (paper.key, paper.arxiv_id) == ("2612.07777", "2612.07777")
    assert paper.doi == "10.48550/arxiv.2612.07777"
    assert paper.version is None


def test_records_of_one_paper_chain_into_one_at_the_earliest_day() -> None:
    # The second gives the first its author, which changes its title key; the third, with
    # neither link nor author, still joins them through the key the first had.
    parsed = parse(
        rss(
            "<item><title>Chained paper</title><link>https://c.example/1</link>"
            "<pubDate>Fri, 04 Dec 2026 12:00:00 GMT</pubDate></item>"
            "<item><title>Chained paper</title><link>https://www.c.example/1/</link>"
            "<author>ada@c.example (Ada Okafor)</author>"
            "<pubDate>Thu, 03 Dec 2026 12:00:00 GMT</pubDate></item>"
            "<item><title>Chained  PAPER!</title><description>The longest abstract.</description>"
            "</item>"
        )
    )
    [(day, paper)] = parsed.entries
    assert day == date(2026, 12, 3)
    assert paper.key == "link:c.example/1"
    assert paper.authors == ("Ada Okafor",)
    assert paper.abstract == "The longest abstract."
    assert parsed.warnings == (
        "'Chained paper' is listed twice: kept once",
        "'Chained PAPER!' is listed twice: kept once",
    )


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("ada@lab.example (Ada Okafor)", "Ada Okafor"),
        ("Ada Okafor (ada@lab.example)", "Ada Okafor"),
        ("Ada Okafor <ada@lab.example>", "Ada Okafor"),
        ("ada@lab.example", ""),
        ("Ada Okafor", "Ada Okafor"),
        ("Okafor (Ada)", "Okafor (Ada)"),
    ],
)
def test_an_rss_author_is_a_name_without_its_address(text: str, name: str) -> None:
    assert person(text) == name


def test_rss_authors_with_long_domains_keep_their_names() -> None:
    parsed = parse(
        rss(
            "<item><title>One</title><link>https://a.example/1</link>"
            "<author>ada.okafor@university.example (Ada Okafor)</author></item>"
            "<item><title>Two</title><link>https://a.example/2</link>"
            "<author>noreply@journal.example</author></item>"
        )
    )
    assert [p.authors for _, p in parsed.entries] == [("Ada Okafor",), ()]


def test_an_entry_dated_after_the_fetch_day_is_listed_on_it() -> None:
    parsed = parse(
        rss(
            "<item><title>Issue of next month</title><link>https://j.example/9</link>"
            "<pubDate>Fri, 01 Jan 2027 00:00:00 GMT</pubDate></item>"
            "<item><title>Today</title><link>https://j.example/8</link>"
            "<pubDate>Fri, 04 Dec 2026 08:00:00 GMT</pubDate></item>"
        )
    )
    assert [(day, p.title) for day, p in parsed.entries] == [
        (date(2026, 12, 4), "Issue of next month"),
        (date(2026, 12, 4), "Today"),
    ]
    assert parsed.entries[0][1].published == datetime(2027, 1, 1, tzinfo=UTC)
    assert parsed.warnings == ("1 entry dated after 2026-12-04 (the fetch day) listed on it",)


TITLE_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"),
        blacklist_characters="<>&\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    ),
    min_size=1,
    max_size=80,
).filter(lambda t: t.strip() != "")


@given(TITLE_TEXT, st.sampled_from(["ISO-8859-1", "windows-1252", "us-ascii", "ISO-8859-15"]))
@settings(max_examples=100, deadline=None)
def test_utf8_bytes_read_right_whatever_charset_they_claim(title: str, claimed: str) -> None:
    # feedparser repairs text that reads as UTF-8 encoded twice ("Ã©" -> "é"): real
    # titles that are such text are the broken ones it was made for.
    assume(not _encoded_twice(title))
    body = rss(f"<item><title>{title}</title><link>https://a.example/1</link></item>")
    parsed = parse(body, content_type=f"text/xml; charset={claimed}")
    [(_, paper)] = parsed.entries
    assert paper.title == html_line(title)


def _encoded_twice(text: str) -> bool:
    try:
        text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return not text.isascii()


NAME = st.from_regex(r"[A-Z][a-zé]{1,8} [A-Z][a-zø]{1,10}", fullmatch=True)


@given(st.lists(NAME, min_size=1, max_size=6, unique=True))
@settings(max_examples=50, deadline=None)
def test_names_joined_by_commas_and_and_split_back(names: list[str]) -> None:
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    assert split_authors(joined) == names
