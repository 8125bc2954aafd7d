"""The arXiv parsers and calendar (digest.sources.arxiv): RSS items of the announce types
asked for, the query API's pages and error entry, the submission window of a listing date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]

from digest.errors import SourceError
from digest.sources.arxiv import (
    ANNOUNCE_TYPES,
    DEADLINE,
    EASTERN,
    HOLIDAYS,
    announcement_window,
    category_terms,
    in_categories,
    parse_api,
    parse_rss,
    previous_listing,
    query_for,
    split_authors,
    text_of,
)
from digest.sources.huggingface import clean_line

FIXTURES = Path(__file__).parent / "fixtures" / "arxiv"
RSS_DAY = (FIXTURES / "rss-2026-11-10.xml").read_bytes()


def test_new_and_cross_items_of_the_feed_become_papers_once_with_every_category() -> None:
    feed = parse_rss(RSS_DAY, name="arxiv-ml", announce=("new", "cross"))
    assert feed.day == date(2026, 11, 10)
    assert [p.arxiv_id for p in feed.papers] == ["2611.04217", "2611.05001", "2611.03388"]
    assert feed.skipped == 2  # replace, replace-cross
    assert feed.items == 7
    twice = feed.papers[1]
    assert twice.key == "2611.05001"
    assert twice.categories == ("cs.LG", "cs.CL")
    assert twice.sources == ("arxiv-ml",)
    assert twice.link == "https://arxiv.org/abs/2611.05001"
    assert twice.version == 1
    assert any("listed twice" in w for w in feed.warnings)
    assert any("no arXiv id" in w for w in feed.warnings)  # the item without one


def test_an_item_keeps_its_abstract_authors_and_announcement_date() -> None:
    feed = parse_rss(RSS_DAY, name="arxiv-ml", announce=("new",))
    first = feed.papers[0]
    assert first.title == "Sparse Lattice Adapters for Low-Resource Speech Translation"
    assert first.abstract == (
        "We introduce sparse lattice adapters, a parameter-light way to adapt speech"
        " encoders to new language pairs with $k \\ll n$ examples."
    )
    assert first.authors == ("Mira Okonkwo", "Tobias Lindqvist")
    assert first.categories == ("cs.CL", "eess.AS")
    assert first.published == datetime(2026, 11, 10, 5, 0, tzinfo=UTC)
    assert first.doi is None


def test_html_in_titles_and_abstracts_is_text_and_latex_comparisons_survive() -> None:
    paper = parse_rss(RSS_DAY, name="a", announce=("new",)).papers[1]
    assert paper.title == "Token Budgets for Honest Decoding: When $a<b$ and $c>d$"
    assert paper.abstract == (
        "We bound decoding cost when $x<y$ holds & show a second line of the abstract."
    )


def test_non_ascii_authors_are_split_at_commas_and_and() -> None:
    paper = parse_rss(RSS_DAY, name="a", announce=("new",)).papers[1]
    assert paper.authors == ("Søren Kierkegård-Nyström", "Zoë Ä. Łukasiewicz", "Nguyễn Thị Hoa")


@pytest.mark.parametrize(
    ("announce", "ids"),
    [
        (("new",), ["2611.04217", "2611.05001"]),
        (("cross",), ["2611.05001", "2611.03388"]),
        (("replace",), ["2609.11111"]),
        (("replace-cross",), ["2608.11930"]),
        (ANNOUNCE_TYPES, ["2611.04217", "2611.05001", "2611.03388", "2609.11111", "2608.11930"]),
    ],
)
def test_announce_types_filter_the_items(announce: tuple[str, ...], ids: list[str]) -> None:
    feed = parse_rss(RSS_DAY, name="a", announce=announce)
    assert [p.arxiv_id for p in feed.papers] == ids


def test_a_replacement_carries_its_version_and_doi() -> None:
    paper = parse_rss(RSS_DAY, name="a", announce=("replace-cross",)).papers[0]
    assert paper.version == 3
    assert paper.doi == "10.5555/example.2026.117"
    assert paper.key == "2608.11930"  # the arXiv id wins over the DOI


def test_an_empty_weekend_feed_has_its_date_and_no_papers() -> None:
    feed = parse_rss((FIXTURES / "rss-weekend.xml").read_bytes(), name="a", announce=("new",))
    assert feed.day == date(2026, 11, 14)
    assert feed.papers == [] and feed.items == 0 and feed.skipped == 0


def test_the_date_falls_back_to_last_build_then_to_an_item() -> None:
    no_pub = RSS_DAY.replace(
        b"<pubDate>Tue, 10 Nov 2026 00:00:00 -0500</pubDate>\n    <skipDays>", b"<skipDays>"
    )
    assert parse_rss(no_pub, name="a", announce=("new",)).day == date(2026, 11, 10)
    bare = no_pub.replace(b"<lastBuildDate>Tue, 10 Nov 2026 05:00:02 +0000</lastBuildDate>", b"")
    assert parse_rss(bare, name="a", announce=("new",)).day == date(2026, 11, 10)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty body"),
        (b"<!DOCTYPE html><html><body>Service Unavailable</body></html>", "HTML page"),
        (b"<html><head><title>Login</title></head></html>", "HTML page"),
        (b"\x00\x01garbage{", "not XML"),
        (b"<rss><channel><item><title>cut", "not XML"),
        (b'{"error": "nope"}', "not XML"),
        (b"<feed xmlns='http://www.w3.org/2005/Atom'/>", "got <feed>"),
    ],
)
def test_anything_but_rss_is_a_clear_source_error(body: bytes, words: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_rss(body, name="arxiv-ml", announce=("new",), url="https://rss.example/rss/cs.CL")
    assert words in str(caught.value)
    assert caught.value.url == "https://rss.example/rss/cs.CL"


def test_entities_are_not_resolved() -> None:
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<rss><channel><item><title>&x;Leak</title><guid>oai:arXiv.org:2611.00001v1</guid>"
        b"<arxiv:announce_type xmlns:arxiv='http://arxiv.org/schemas/atom'>new"
        b"</arxiv:announce_type></item></channel></rss>"
    )
    feed = parse_rss(evil, name="a", announce=("new",))
    assert [p.title for p in feed.papers] == ["Leak"]


def test_an_api_page_gives_papers_with_primary_category_first_and_paging() -> None:
    page = parse_api((FIXTURES / "api-page.xml").read_bytes(), name="arxiv-ml")
    assert (page.total_results, page.start, page.items_per_page) == (3, 0, 500)
    first, second = page.papers
    assert first.title == "Sparse Lattice Adapters for Low-Resource Speech Translation"
    assert first.abstract.startswith("We introduce sparse lattice adapters, a parameter-light")
    assert first.published == datetime(2026, 11, 9, 16, 20, 31, tzinfo=UTC)
    assert first.version == 1 and first.categories == ("cs.CL", "eess.AS")
    assert second.key == "2611.04300" and second.version == 2
    assert second.title == "Über-Efficient Retrieval for Łódź Archives"
    assert second.abstract == "Retrieval over scanned archives.\n\nA second paragraph."
    assert second.authors == ("Agnieszka Wróblewska", "José Núñez")
    assert second.categories == ("cs.IR", "cs.CL")
    assert second.doi == "10.1000/example.4300"
    assert second.link == "https://arxiv.org/abs/2611.04300"
    assert page.warnings == ["entry 2 (http://arxiv.org/abs/2611.04412v1): no title, skipped"]


def test_the_api_error_entry_is_a_source_error_with_arxivs_message() -> None:
    with pytest.raises(SourceError) as caught:
        parse_api((FIXTURES / "api-error.xml").read_bytes(), name="arxiv-ml", url="u")
    assert "arXiv's API answered with an error: start must be non-negative" in str(caught.value)
    assert caught.value.hint and "categories" in caught.value.hint


def test_an_api_page_without_total_results_says_so() -> None:
    body = b"<feed xmlns='http://www.w3.org/2005/Atom'><title>x</title></feed>"
    page = parse_api(body, name="a")
    assert page.papers == [] and page.total_results is None


def test_an_rss_feed_is_not_an_api_page() -> None:
    with pytest.raises(SourceError, match="expected an Atom <feed>"):
        parse_api(RSS_DAY, name="a")


def eastern(day: str, hour: int) -> datetime:
    """``day`` at ``hour``:00 US Eastern, as UTC (November 2026: UTC-5)."""
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00-05:00").astimezone(UTC)


@pytest.mark.parametrize(
    ("day", "window"),
    [
        # Monday: Sunday's announcement, Thursday 14:00 to Friday 14:00.
        (date(2026, 11, 9), (eastern("2026-11-05", 14), eastern("2026-11-06", 14))),
        # Tuesday: Monday's announcement, the weekend folded in: Friday 14:00 to Monday 14:00.
        (date(2026, 11, 10), (eastern("2026-11-06", 14), eastern("2026-11-09", 14))),
        (date(2026, 11, 11), (eastern("2026-11-09", 14), eastern("2026-11-10", 14))),
        (date(2026, 11, 13), (eastern("2026-11-11", 14), eastern("2026-11-12", 14))),
        # Friday after Thanksgiving: the holiday's cycle is folded in (Tuesday to Thursday).
        (date(2026, 11, 27), (eastern("2026-11-24", 14), eastern("2026-11-26", 14))),
        (date(2026, 11, 14), None),  # Saturday
        (date(2026, 11, 15), None),  # Sunday
        (date(2026, 11, 26), None),  # Thanksgiving
    ],
)
def test_the_window_of_a_listing_date(day: date, window: tuple[datetime, datetime] | None) -> None:
    assert announcement_window(day) == window


def test_the_window_follows_daylight_saving_time() -> None:
    # Summer: 14:00 EDT is 18:00 UTC.
    assert announcement_window(date(2026, 6, 17)) == (
        datetime(2026, 6, 15, 18, 0, tzinfo=UTC),
        datetime(2026, 6, 16, 18, 0, tzinfo=UTC),
    )


def test_every_holiday_is_a_weekday_without_a_window() -> None:
    assert HOLIDAYS and all(d.weekday() < 5 for d in HOLIDAYS)
    assert all(announcement_window(d) is None for d in HOLIDAYS)


def test_the_query_ors_the_categories_within_the_window() -> None:
    window = announcement_window(date(2026, 11, 10))
    assert window is not None
    assert query_for(["cs.CL", "cs.LG", "cs.CL"], window) == (
        "(cat:cs.CL OR cat:cs.LG) AND submittedDate:[202611061900 TO 202611091900]"
    )
    assert category_terms(["cs", "hep-th", "math.AG"]) == ["cat:cs.*", "cat:hep-th", "cat:math.AG"]


def test_categories_match_by_archive_or_class() -> None:
    assert in_categories("cs.CL", ["cs"])
    assert in_categories("cs.CL", ["cs.CL"])
    assert not in_categories("cs.CLX", ["cs.CL"])
    assert not in_categories("math-ph", ["math"])
    assert not in_categories(None, ["cs"])


@pytest.mark.parametrize(
    ("creator", "names"),
    [
        ("A. One, B. Two", ("A. One", "B. Two")),
        ("A. One and B. Two", ("A. One", "B. Two")),
        ("A. One, B. Two, and C. Three", ("A. One", "B. Two", "C. Three")),
        ("Martin Luther King, Jr., Ada Byron", ("Martin Luther King, Jr.", "Ada Byron")),
        ("Zoë Ødegård et al.", ("Zoë Ødegård",)),
        ("Alexandra Anderson", ("Alexandra Anderson",)),  # "and" inside a name stays
        ("", ()),
    ],
)
def test_authors_split(creator: str, names: tuple[str, ...]) -> None:
    assert split_authors(creator) == names


def test_text_of_drops_tags_and_decodes_entities() -> None:
    assert text_of("<i>Q</i> &amp; <b class='x'>A</b> for $n<m$") == "Q & A for $n<m$"
    assert text_of(None) == ""


@settings(max_examples=200)
@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31)))
def test_windows_tile_time_without_gaps_or_overlaps(day: date) -> None:
    window = announcement_window(day)
    if window is None:
        assert day.weekday() >= 5 or day in HOLIDAYS
        return
    start, end = window
    assert start < end
    assert end.astimezone(EASTERN).time() == DEADLINE
    assert end.astimezone(EASTERN).date() < day
    previous = announcement_window(previous_listing(day))
    assert previous is not None and previous[1] == start


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_feed_or_a_source_error(body: bytes) -> None:
    for parse in (
        lambda: parse_rss(body, name="a", announce=ANNOUNCE_TYPES),
        lambda: parse_api(body, name="a"),
    ):
        try:
            parse()
        except SourceError as exc:
            assert exc.url == "a" and exc.reason


_XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=80,
)


@settings(max_examples=150)
@given(
    title=_XML_TEXT.filter(lambda t: clean_line(text_of(t))),
    names=st.lists(
        st.from_regex(r"[^\W\d_]{1,12}", fullmatch=True),  # letters of any script
        min_size=1,
        max_size=5,
    ),
    version=st.integers(1, 30),
)
def test_an_item_round_trips(title: str, names: list[str], version: int) -> None:
    names = [n for n in names if n.lower() not in ("and", "jr", "sr", "ii", "iii", "iv")]
    rss = etree.Element("rss", nsmap={"arxiv": "http://arxiv.org/schemas/atom"})
    item = etree.SubElement(etree.SubElement(rss, "channel"), "item")
    etree.SubElement(item, "title").text = title
    etree.SubElement(item, "guid").text = f"oai:arXiv.org:2611.01234v{version}"
    etree.SubElement(item, "{http://purl.org/dc/elements/1.1/}creator").text = ", ".join(names)
    etree.SubElement(item, "description").text = "arXiv:2611.01234 Announce Type: new \nAbstract: x"
    feed = parse_rss(etree.tostring(rss), name="a", announce=("new",))
    (paper,) = feed.papers
    assert paper.title == clean_line(text_of(title))
    assert (paper.key, paper.version, paper.abstract) == ("2611.01234", version, "x")
    assert paper.authors == tuple(names)
