"""ArxivSource against a real local server speaking arXiv's RSS and query API
(tests/support/arxiv_server.py): today's listing from the feed, other dates from the API page
by page, quiet days, and failures that name the source and say what to do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from digest.errors import SourceError
from digest.sources.arxiv import EASTERN
from digest.sources.arxiv_http import ArxivSource
from digest.sources.http import NotModified
from tests.support.arxiv_server import ERROR_PAGE, ArxivServer, Record, error_xml, feed_xml

FIXTURES = Path(__file__).parent / "fixtures" / "arxiv"
RSS_DAY = (FIXTURES / "rss-2026-11-10.xml").read_bytes()
WEEKEND = (FIXTURES / "rss-weekend.xml").read_bytes()


def et(text: str) -> datetime:
    """A moment written in US Eastern (``2026-11-10 08:00``)."""
    return datetime.fromisoformat(text).replace(tzinfo=EASTERN)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Tuesday 2026-11-10's window: Friday 6 Nov 14:00 EST (19:00 UTC) to Monday 9 Nov 19:00 UTC.
RECORDS = [
    Record("2611.00990", "Before the Window", utc("2026-11-06 18:59"), "cs.CL"),
    Record("2611.01001", "Friday Evening Parsing", utc("2026-11-06 19:00"), "cs.CL"),
    Record(
        "2611.01002",
        "Weekend <i>Speech</i> Models",
        utc("2026-11-07 10:00"),
        "eess.AS",
        ("cs.CL",),
        authors=("Zoë Ødegård", "Nguyễn Thị Hoa"),
    ),
    Record("2611.01003", "Saturday Summaries", utc("2026-11-07 11:00"), "cs.CL", version=2),
    Record("2611.01004", "Sunday Syntax", utc("2026-11-08 09:00"), "cs.LG", ("cs.CL",)),
    Record("2611.01005", "Monday Morning Morphology", utc("2026-11-09 15:00"), "cs.CL"),
    Record("2611.01006", "Last Minute Lexicons", utc("2026-11-09 18:59"), "cs.CL"),
    Record("2611.01100", "After the Deadline", utc("2026-11-09 19:00"), "cs.CL"),
    Record("2611.01200", "Other Category", utc("2026-11-08 12:00"), "math.AG"),
]
TUESDAY_IDS = ["2611.01001", "2611.01002", "2611.01003", "2611.01004", "2611.01005", "2611.01006"]


@pytest.fixture
def server() -> Iterator[ArxivServer]:
    with ArxivServer(RECORDS, rss=RSS_DAY) as running:
        yield running


class Sleeps:
    """A sleep that records its delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


Make = Callable[..., ArxivSource]


@pytest.fixture
def make(server: ArxivServer, tmp_path: Path) -> Make:
    def build(now: str = "2026-11-10 08:00", **options: Any) -> ArxivSource:
        settings: dict[str, Any] = {
            "rss_url": server.rss_url,
            "api_url": server.api_url,
            "min_interval": 0.0,
            "gate_dir": tmp_path / "gates",
            "max_retries": 2,
            "sleep": Sleeps(),
            "clock": lambda: et(now),
            "timeout": 5.0,
        }
        categories = options.pop("categories", ["cs.CL", "cs.LG"])
        settings.update(options)
        return ArxivSource("arxiv-ml", categories, **settings)

    return build


def api_starts(server: ArxivServer) -> list[int]:
    return [
        int(parse_qs(urlsplit(r).query)["start"][0])
        for r in server.requests
        if r.startswith("/api/query")
    ]


async def test_todays_listing_comes_from_the_feed_of_the_joined_categories(
    server: ArxivServer, make: Make
) -> None:
    source = make(user_agent="paper-digest/1.0 (mailto:ops@example.org)")
    listing = await source.fetch(date(2026, 11, 10))
    assert server.requests == ["/rss/cs.CL+cs.LG"]
    assert server.user_agents == ["paper-digest/1.0 (mailto:ops@example.org)"]
    assert listing.source == "arxiv-ml" and listing.date == date(2026, 11, 10)
    assert [p.arxiv_id for p in listing.papers] == ["2611.04217", "2611.05001", "2611.03388"]
    assert listing.papers[1].categories == ("cs.LG", "cs.CL")
    assert all(p.sources == ("arxiv-ml",) for p in listing.papers)
    assert source.kind == "arxiv" and source.name == "arxiv-ml"


async def test_replacements_come_only_when_asked(server: ArxivServer, make: Make) -> None:
    listing = await make(announce=("replace", "replace-cross")).fetch(date(2026, 11, 10))
    assert [(p.arxiv_id, p.version) for p in listing.papers] == [
        ("2609.11111", 2),
        ("2608.11930", 3),
    ]


async def test_a_past_date_comes_from_the_api_in_two_or_more_pages(
    server: ArxivServer, make: Make
) -> None:
    listing = await make(now="2026-11-20 09:00", page_size=2).fetch(date(2026, 11, 10))
    assert [p.arxiv_id for p in listing.papers] == TUESDAY_IDS
    # Both ends of the query are included (minutes): 14:00 sharp is the next cycle's, so
    # the API's seventh result, submitted at 19:00 UTC on Monday, is left out here.
    assert api_starts(server) == [0, 2, 4, 6]
    assert not any(r.startswith("/rss/") for r in server.requests)
    query = parse_qs(urlsplit(server.requests[0]).query)
    assert query["search_query"] == [
        "(cat:cs.CL OR cat:cs.LG) AND submittedDate:[202611061900 TO 202611091900]"
    ]
    assert query["sortBy"] == ["submittedDate"] and query["max_results"] == ["2"]
    weekend = listing.papers[1]
    assert weekend.title == "Weekend Speech Models"
    assert weekend.authors == ("Zoë Ødegård", "Nguyễn Thị Hoa")
    assert weekend.categories == ("eess.AS", "cs.CL")
    assert listing.papers[2].version == 2


async def test_the_api_keeps_new_or_cross_as_asked(server: ArxivServer, make: Make) -> None:
    only_new = await make(now="2026-11-20 09:00", announce=("new",)).fetch(date(2026, 11, 10))
    assert [p.arxiv_id for p in only_new.papers] == [
        "2611.01001", "2611.01003", "2611.01004", "2611.01005", "2611.01006"
    ]  # fmt: skip
    only_cross = await make(
        now="2026-11-20 09:00", announce=("cross",), categories=["cs.CL"]
    ).fetch(date(2026, 11, 10))
    assert [p.arxiv_id for p in only_cross.papers] == ["2611.01002", "2611.01004"]


async def test_an_archive_takes_its_subject_classes(server: ArxivServer, make: Make) -> None:
    listing = await make(now="2026-11-20 09:00", categories=["math"]).fetch(date(2026, 11, 10))
    assert [p.arxiv_id for p in listing.papers] == ["2611.01200"]
    assert "cat%3Amath.%2A" in server.requests[0] or "cat:math.*" in server.requests[0]


@pytest.mark.parametrize("day", [date(2026, 11, 14), date(2026, 11, 15), date(2026, 11, 26)])
async def test_weekends_and_holidays_are_quiet_days_without_a_request(
    server: ArxivServer, make: Make, day: date
) -> None:
    listing = await make(now="2026-11-30 09:00").fetch(day)
    assert listing.papers == () and listing.source == "arxiv-ml"
    assert "no arXiv announcement" in listing.warnings[0]
    assert server.requests == []


async def test_an_empty_feed_of_the_day_is_a_quiet_day(server: ArxivServer, make: Make) -> None:
    server.rss = WEEKEND.replace(b"Sat, 14 Nov 2026", b"Wed, 11 Nov 2026")
    listing = await make(now="2026-11-11 07:00").fetch(date(2026, 11, 11))
    assert listing.papers == ()
    assert server.requests == ["/rss/cs.CL+cs.LG"]
    assert any("empty" in w for w in listing.warnings)


async def test_on_a_weekend_the_feed_is_not_fridays_so_the_api_gives_it(
    server: ArxivServer, make: Make
) -> None:
    server.rss = WEEKEND
    listing = await make(now="2026-11-14 10:00").fetch(date(2026, 11, 13))
    assert server.requests[0] == "/rss/cs.CL+cs.LG"
    assert api_starts(server) == [0]
    assert listing.papers == ()  # no record in Wed 14:00..Thu 14:00
    assert any("RSS feed is of 2026-11-14" in w for w in listing.warnings)


async def test_a_date_not_announced_yet_is_a_failure_to_retry(
    server: ArxivServer, make: Make
) -> None:
    with pytest.raises(SourceError) as caught:
        await make(now="2026-11-09 19:59").fetch(date(2026, 11, 10))
    assert "'arxiv-ml'" in str(caught.value) and "not yet" in str(caught.value)
    assert caught.value.hint == "the next run fetches it"
    assert server.requests == []


async def test_after_the_announcement_and_before_the_feed_the_api_answers(
    server: ArxivServer, make: Make
) -> None:
    listing = await make(now="2026-11-09 21:00").fetch(date(2026, 11, 10))
    assert [p.arxiv_id for p in listing.papers] == TUESDAY_IDS
    assert not any(r.startswith("/rss/") for r in server.requests)


async def test_the_api_error_entry_is_a_failure_with_arxivs_message(
    server: ArxivServer, make: Make
) -> None:
    server.fail(body=error_xml("incorrect id format for 1234.12345"), path="/api")
    with pytest.raises(SourceError) as caught:
        await make(now="2026-11-20 09:00").fetch(date(2026, 11, 10))
    message = str(caught.value)
    assert "arXiv source 'arxiv-ml'" in message
    assert "incorrect id format for 1234.12345" in message
    assert caught.value.url.startswith(server.api_url)
    assert caught.value.hint and "categories" in caught.value.hint


async def test_a_429_waits_what_retry_after_asks(server: ArxivServer, make: Make) -> None:
    sleeps = Sleeps()
    server.fail(429, headers={"Retry-After": "1"}, path="/api")
    listing = await make(now="2026-11-20 09:00", sleep=sleeps).fetch(date(2026, 11, 10))
    assert [p.arxiv_id for p in listing.papers] == TUESDAY_IDS
    assert sleeps.delays == [1.0]
    assert api_starts(server) == [0, 0]


async def test_a_429_past_the_retries_names_the_rate_limit(server: ArxivServer, make: Make) -> None:
    server.fail(429, headers={"Retry-After": "1"}, path="/api", times=10)
    with pytest.raises(SourceError) as caught:
        await make(now="2026-11-20 09:00").fetch(date(2026, 11, 10))
    assert "HTTP 429" in str(caught.value) and "gave up after 3 attempts" in str(caught.value)
    assert caught.value.hint and "one request every 3 seconds" in caught.value.hint


@pytest.mark.parametrize(
    ("body", "words"),
    [(ERROR_PAGE, "got an HTML page"), (b"\x89PNG garbage", "not XML")],
)
async def test_garbage_or_html_from_the_api_is_a_clear_failure(
    server: ArxivServer, make: Make, body: bytes, words: str
) -> None:
    server.fail(body=body, path="/api")
    with pytest.raises(SourceError) as caught:
        await make(now="2026-11-20 09:00").fetch(date(2026, 11, 10))
    assert "arXiv source 'arxiv-ml'" in str(caught.value) and words in str(caught.value)


async def test_a_broken_feed_falls_back_to_the_api(server: ArxivServer, make: Make) -> None:
    server.fail(body=ERROR_PAGE, path="/rss")
    listing = await make().fetch(date(2026, 11, 10))
    assert [p.arxiv_id for p in listing.papers] == TUESDAY_IDS
    assert any("the RSS feed failed" in w and "HTML page" in w for w in listing.warnings)


async def test_a_feed_and_an_api_both_down_fail_after_the_retries(
    server: ArxivServer, make: Make
) -> None:
    server.fail(503, times=20)
    with pytest.raises(SourceError) as caught:
        await make().fetch(date(2026, 11, 10))
    assert "HTTP 503" in str(caught.value) and "'arxiv-ml'" in str(caught.value)
    assert str(caught.value).endswith("; the RSS feed failed too")
    assert caught.value.hint
    assert len(server.requests) == 6  # 3 attempts at the feed, 3 at the API


async def test_a_feed_at_arxivs_limit_is_completed_from_the_api(
    server: ArxivServer, make: Make
) -> None:
    listing = await make(rss_limit=7).fetch(date(2026, 11, 10))  # the fixture has 7 items
    feed_ids = ["2611.04217", "2611.05001", "2611.03388"]
    assert [p.arxiv_id for p in listing.papers] == feed_ids + TUESDAY_IDS
    assert any("arXiv's limit" in w for w in listing.warnings)


async def test_a_flaky_empty_api_page_is_asked_again(server: ArxivServer, make: Make) -> None:
    server.fail(body=feed_xml([], None, 0, 0), path="/api")
    listing = await make(now="2026-11-20 09:00").fetch(date(2026, 11, 10))
    assert [p.arxiv_id for p in listing.papers] == TUESDAY_IDS
    assert api_starts(server) == [0, 0]


async def test_the_feed_is_fetched_conditionally(server: ArxivServer, make: Make) -> None:
    validators: dict[str, tuple[str | None, str | None]] = {}
    source = make(validators=validators)
    first = await source.fetch(date(2026, 11, 10))
    assert len(first.papers) == 3
    assert list(validators) == [server.rss_url + "cs.CL+cs.LG"]
    with pytest.raises(NotModified):
        await source.fetch(date(2026, 11, 10))


async def test_requests_are_spaced_by_the_minimum_interval(server: ArxivServer, make: Make) -> None:
    await make(now="2026-11-20 09:00", page_size=2, min_interval=0.2).fetch(date(2026, 11, 10))
    gaps = [b - a for a, b in zip(server.moments, server.moments[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 0.19


def test_a_source_needs_categories_and_known_announce_types() -> None:
    with pytest.raises(ValueError, match="categories"):
        ArxivSource("a", [])
    with pytest.raises(ValueError, match="replaced"):
        ArxivSource("a", ["cs.CL"], announce=("new", "replaced"))
    assert ArxivSource("a", ["cs.CL", "cs.LG"]).feed_url == "https://rss.arxiv.org/rss/cs.CL+cs.LG"
