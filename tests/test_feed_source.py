"""The generic RSS/Atom source (``kind = "feed"``) against a real local HTTP server: RSS
0.91, 2.0 and 1.0 (RDF), Atom; HTML in titles, wrong charsets, broken XML, relative links,
HTML pages and empty bodies; one paper once; which day an entry is listed under."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.errors import SourceError
from digest.models import Listing, Paper
from digest.sources.feed_http import FeedSource
from digest.sources.http import NotModified, Validators
from tests.support.feed_server import FeedServer

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
FETCHED = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as started:
        yield started


def fixture(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def source(url: str, tz: str = "UTC", **options: object) -> FeedSource:
    async def no_sleep(seconds: float) -> None:
        pass

    return FeedSource(
        "neuro",
        url,
        timezone=ZoneInfo(tz),
        timeout=5.0,
        max_retries=2,
        clock=lambda: FETCHED,
        sleep=no_sleep,
        **options,  # type: ignore[arg-type]
    )


def titles(listing: Listing) -> list[str]:
    return [paper.title for paper in listing.papers]


def only(listing: Listing) -> Paper:
    assert len(listing.papers) == 1, titles(listing)
    return listing.papers[0]


def rss(items: str, *, encoding: str = "UTF-8") -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Invented</title>'
        f"<link>https://feeds.example.org/</link><description>d</description>{items}"
        "</channel></rss>"
    )


async def test_an_rss_2_feed_gives_every_field_of_its_items(server: FeedServer) -> None:
    url = server.serve("/jin/latest.xml", fixture("rss20.xml"))
    listing = await source(url).fetch(date(2026, 12, 4))
    assert listing.source == "neuro"
    assert listing.date == date(2026, 12, 4)
    assert listing.failures == ()
    first, second = listing.papers
    assert first == Paper(
        key="doi:10.5555/jin.2026.0412",
        title="Dendritic spikes gate place-cell remapping in a virtual maze",
        abstract="We recorded dendritic activity in head-fixed mice running a virtual maze."
        "\n\nSpikes preceded remapping by 2 s in 14 of 19 cells.",
        authors=("Ngozi Adeyemi", "Tomás Herrera", "Mei-Ling Zhou"),
        published=datetime(2026, 12, 4, 2, 15, tzinfo=UTC),
        doi="10.5555/jin.2026.0412",
        link="https://jin.example.org/article/10.5555/jin.2026.0412?utm_source=rss&utm_medium=feed",
        categories=("Neuroscience", "Hippocampus"),
        sources=("neuro",),
    )
    assert second.key == "doi:10.5555/jin.2026.0413"
    assert second.authors == ("Ines Lindqvist", "Rahul Varma")
    assert second.abstract == "Spindle density predicted overnight gains."
    assert second.url == "https://jin.example.org/article/10.5555/jin.2026.0413"
    assert server.requests == ["/jin/latest.xml"]
    assert "application/rss+xml" in server.accepts[0]


async def test_an_entry_belongs_to_its_published_day_in_the_configured_time_zone(
    server: FeedServer,
) -> None:
    # Thu 21:15 in New York is Fri 02:15 in UTC; Fri 09:00 UTC is Fri 04:00 in New York.
    url = server.serve("/jin/latest.xml", fixture("rss20.xml"))
    in_utc = source(url, "UTC")
    assert titles(await in_utc.fetch(date(2026, 12, 3))) == []
    assert len((await in_utc.fetch(date(2026, 12, 4))).papers) == 2
    in_new_york = source(url, "America/New_York")
    thursday = await in_new_york.fetch(date(2026, 12, 3))
    friday = await in_new_york.fetch(date(2026, 12, 4))
    assert only(thursday).key == "doi:10.5555/jin.2026.0412"
    assert only(friday).key == "doi:10.5555/jin.2026.0413"
    # An Atom time at 22:10 UTC on the 3rd is the 4th in Tokyo.
    atom = server.serve("/lab/atom.xml", fixture("atom.xml"), content_type="application/atom+xml")
    tokyo = await source(atom, "Asia/Tokyo").fetch(date(2026, 12, 4))
    assert "Bounds for n<k & other notes" in titles(tokyo)
    berlin = await source(atom, "Europe/Berlin").fetch(date(2026, 12, 3))
    assert titles(berlin) == ["Bounds for n<k & other notes"]


async def test_an_rss_0_91_feed_without_dates_is_listed_on_the_fetch_day(
    server: FeedServer,
) -> None:
    url = server.serve("/notes.rss", fixture("rss091.xml"), content_type="text/xml")
    # 15:00 UTC on the 4th is already the 5th in Tokyo: the fetch date is the zone's.
    tokyo = source(url, "Asia/Tokyo")
    assert (await tokyo.fetch(date(2026, 12, 4))).papers == ()
    listing = await tokyo.fetch(date(2026, 12, 5))
    assert titles(listing) == [
        "Moss carpets buffer soil temperature on north-facing slopes",
        "A census of beetles in one abandoned orchard",
    ]
    moss = listing.papers[0]
    assert moss.key == "link:notes.example.org/n/2026-118"
    assert moss.published is None
    assert moss.abstract.startswith("Night-time soil temperatures under moss")
    assert len(server.requests) == 1  # the second day came from the same fetch


async def test_an_rss_1_0_rdf_feed_and_a_bare_date_stays_its_day(server: FeedServer) -> None:
    url = server.serve("/bio/rss", fixture("rdf.xml"), content_type="application/rdf+xml")
    los_angeles = source(url, "America/Los_Angeles")
    tardigrades = only(await los_angeles.fetch(date(2026, 12, 2)))  # 01:00 UTC on the 3rd
    assert tardigrades.title == "Tardigrade proteins stabilise membranes during drying"
    assert tardigrades.key == "doi:10.5555/bio.7781"
    assert tardigrades.authors == ("Chen, Bo", "Okafor, Ada")
    assert tardigrades.link == "https://bio.example.org/l/7781"
    ferns = only(await los_angeles.fetch(date(2026, 12, 3)))
    assert ferns.title == "Leaf venation patterns across 300 invented fern species"
    assert ferns.published == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # midnight in LA
    assert ferns.key == "link:bio.example.org/l/7782"


async def test_an_atom_feed_html_titles_become_text_and_an_arxiv_link_gives_the_key(
    server: FeedServer,
) -> None:
    url = server.serve("/blog/atom.xml", fixture("atom.xml"), content_type="application/atom+xml")
    tiny = only(await source(url, "Europe/Rome").fetch(date(2026, 12, 4)))
    assert tiny.title == "Tiny models & big scenes"
    assert tiny.key == "2612.01234"
    assert tiny.arxiv_id == "2612.01234"
    assert tiny.version == 2
    assert tiny.link == "https://lab.example.net/blog/posts/tiny-models"  # xml:base
    assert tiny.url == tiny.link  # a feed's paper links to its own page
    assert tiny.authors == ("Sofia Marchetti", "Kenji Watanabe")
    assert tiny.categories == ("cs.CV", "efficiency")
    assert tiny.published == datetime(2026, 12, 4, 5, 30, tzinfo=UTC)
    assert tiny.abstract == (
        "Our paper shows that a 40M-parameter model segments scenes as well as models ten"
        " times its size.\n\nCode and weights are on our page."
    )
    bounds = only(await source(url, "Europe/Rome").fetch(date(2026, 12, 3)))
    assert bounds.title == "Bounds for n<k & other notes"  # type="text": text as it is
    assert bounds.abstract == "First paragraph of a plain note.\n\nSecond paragraph."
    assert bounds.link == "https://lab.example.net/notes/bounds"


async def test_html_in_rss_titles_and_summaries_never_survives_as_markup(
    server: FeedServer,
) -> None:
    items = (
        "<item><title>&lt;i&gt;Tiny&lt;/i&gt; models &amp;amp; &lt;script&gt;alert(1)"
        "&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;scenes</title>"
        "<link>https://feeds.example.org/p/1</link>"
        "<description><![CDATA[<style>p{color:red}</style><p>One <a href='javascript:x'>"
        "link</a>.</p><iframe src='https://evil.example'>frame text</iframe><p>Two</p>]]>"
        "</description><dc:creator>&lt;b&gt;Ada&lt;/b&gt; Okafor</dc:creator>"
        "<pubDate>Fri, 04 Dec 2026 10:00:00 GMT</pubDate></item>"
    )
    url = server.serve("/x.rss", rss(items).encode())
    paper = only(await source(url).fetch(date(2026, 12, 4)))
    assert paper.title == "Tiny models & scenes"
    assert paper.abstract == "One link.\n\nTwo"  # no style, no iframe content
    assert paper.authors == ("Ada Okafor",)
    for text in (paper.title, paper.abstract, *paper.authors):
        assert "<" not in text and ">" not in text


NON_ASCII_ITEMS = (
    "<item><title>Größe und Naïveté: café-scale models — a “study”</title>"
    "<link>https://feeds.example.org/p/9</link><dc:creator>Zoë Ñúñez</dc:creator>"
    "<pubDate>Fri, 04 Dec 2026 10:00:00 GMT</pubDate></item>"
)


@pytest.mark.parametrize(
    ("encoding", "declared_in", "content_type", "warning"),
    [
        ("utf-8", "UTF-8", "text/xml; charset=ISO-8859-1", "declared ISO-8859-1, but the bytes"),
        ("utf-8", "ISO-8859-1", "application/rss+xml", "declared ISO-8859-1, but the bytes"),
        ("cp1252", "UTF-8", "application/rss+xml; charset=utf-8", "not valid UTF-8"),
        ("cp1252", "UTF-8", None, "not valid UTF-8"),
        ("cp1252", "windows-1252", "text/xml", None),
    ],
)
async def test_a_feed_with_a_wrong_declared_charset_still_reads_right(
    server: FeedServer,
    encoding: str,
    declared_in: str,
    content_type: str | None,
    warning: str | None,
) -> None:
    body = rss(NON_ASCII_ITEMS, encoding=declared_in).encode(encoding)
    url = server.serve("/odd.rss", body, content_type=content_type)
    listing = await source(url).fetch(date(2026, 12, 4))
    paper = only(listing)
    assert paper.title == "Größe und Naïveté: café-scale models — a “study”"
    assert paper.authors == ("Zoë Ñúñez",)
    if warning is None:
        assert listing.warnings == ()
    else:
        assert [w for w in listing.warnings if warning in w], listing.warnings


async def test_a_broken_feed_with_usable_entries_gives_them_with_a_warning(
    server: FeedServer,
) -> None:
    body = rss(
        "<item><title>Glia&nbsp;count in the invented cortex</title>"
        "<link>https://feeds.example.org/p/1</link></item>"
        "<item><title>Second, unbroken</title><link>https://feeds.example.org/p/2</link></item>"
    ).encode()
    body = body.replace(b"</channel></rss>", b"<item><description>cut off mid")
    url = server.serve("/broken.rss", body)
    listing = await source(url).fetch(date(2026, 12, 5))  # undated: the fetch day, in UTC...
    assert listing.papers == ()
    listing = await source(url).fetch(date(2026, 12, 4))
    assert titles(listing) == ["Glia count in the invented cortex", "Second, unbroken"]
    assert any("not well-formed" in w for w in listing.warnings), listing.warnings
    assert any("no title and no link, skipped" in w for w in listing.warnings)


async def test_relative_links_are_resolved_against_the_feed_url(server: FeedServer) -> None:
    items = (
        "<item><title>Rooted</title><link>/papers/1</link></item>"
        "<item><title>Beside</title><link>papers/2.html?utm_source=rss</link></item>"
        "<item><title>Guid only</title><guid isPermaLink='true'>https://feeds.example.org/3</guid>"
        "</item><item><title>Guid not a page</title><guid>post-88</guid></item>"
        "<item><title>Scripted</title><link>javascript:alert(1)</link></item>"
    )
    url = server.serve("/feeds/lab/latest.rss", rss(items).encode())
    listing = await source(url).fetch(date(2026, 12, 4))
    links = {paper.title: paper.link for paper in listing.papers}
    assert links == {
        "Rooted": f"{server.base}/papers/1",
        "Beside": f"{server.base}/feeds/lab/papers/2.html?utm_source=rss",
        "Guid only": "https://feeds.example.org/3",
        "Guid not a page": None,
        "Scripted": None,
    }
    keys = {paper.title: paper.key for paper in listing.papers}
    assert keys["Beside"] == "link:127.0.0.1:" + server.base.rsplit(":", 1)[1] + (
        "/feeds/lab/papers/2.html"
    )
    assert keys["Scripted"].startswith("title:")
    assert any("'javascript:alert(1)' is not an http(s) address" in w for w in listing.warnings)


async def test_atom_links_follow_a_relative_xml_base(server: FeedServer) -> None:
    atom = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="/blog/">'
        "<title>A</title><id>urn:a</id><updated>2026-12-04T00:00:00Z</updated>"
        '<entry><title>Based</title><id>urn:a:1</id><link href="posts/1"/></entry>'
        '<entry xml:base="https://other.example/x/"><title>Rebased</title><id>urn:a:2</id>'
        '<link href="2"/></entry></feed>'
    )
    url = server.serve("/feeds/atom.xml", atom.encode(), content_type="application/atom+xml")
    listing = await source(url).fetch(date(2026, 12, 4))
    assert [paper.link for paper in listing.papers] == [
        f"{server.base}/blog/posts/1",
        "https://other.example/x/2",
    ]


PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invented Lab: news</title>
<link rel="alternate" type="application/rss+xml" title="News" href="/news/feed.xml">
</head><body><h1>News</h1><ul><li><a href="/news/1">A post</a></li></ul></body></html>"""


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/rss+xml"])
async def test_an_html_page_is_a_failure_that_points_to_its_feed(
    server: FeedServer, content_type: str
) -> None:
    url = server.serve("/news", PAGE, content_type=content_type)
    with pytest.raises(SourceError) as caught:
        await source(url).fetch(date(2026, 12, 4))
    assert str(caught.value) == (
        f"{url}: this is an HTML page, not an RSS/Atom feed: check the URL"
    )
    assert caught.value.hint == (
        f"the page names its feed: {server.base}/news/feed.xml; use that as the source's url"
    )


async def test_an_empty_body_is_a_failure(server: FeedServer) -> None:
    url = server.serve("/empty.rss", b"")
    with pytest.raises(SourceError, match="the response is empty, not an RSS/Atom feed"):
        await source(url).fetch(date(2026, 12, 4))


async def test_an_rss_feed_served_as_html_is_still_read(server: FeedServer) -> None:
    items = "<item><title>Served wrongly</title><link>https://feeds.example.org/p/7</link></item>"
    url = server.serve("/wrong-type", rss(items).encode(), content_type="text/html")
    assert titles(await source(url).fetch(date(2026, 12, 4))) == ["Served wrongly"]


async def test_a_valid_feed_without_entries_is_an_empty_listing(server: FeedServer) -> None:
    url = server.serve("/quiet.rss", rss("").encode())
    listing = await source(url).fetch(date(2026, 12, 4))
    assert listing.papers == ()
    assert listing.warnings == ()
    assert listing.source == "neuro"


async def test_the_same_paper_twice_in_one_feed_is_listed_once(server: FeedServer) -> None:
    item = (
        "<item><title>Repeated entry</title><link>https://feeds.example.org/p/5</link>"
        "<description>{}</description><pubDate>{}</pubDate></item>"
    )
    items = (
        item.format("Short.", "Thu, 03 Dec 2026 10:00:00 GMT")
        + item.format("A longer abstract of the same entry.", "Fri, 04 Dec 2026 10:00:00 GMT")
        # the same DOI under another link (a tracking parameter, www.)
        + "<item><title>By DOI</title><link>https://www.j.example.org/a/1?utm_medium=rss</link>"
        "<dc:identifier>doi:10.5555/ABC</dc:identifier><category>one</category>"
        "<pubDate>Fri, 04 Dec 2026 10:00:00 GMT</pubDate></item>"
        "<item><title>By DOI, again</title><link>https://doi.org/10.5555/abc</link>"
        "<category>two</category><pubDate>Fri, 04 Dec 2026 11:00:00 GMT</pubDate></item>"
    )
    url = server.serve("/twice.rss", rss(items).encode())
    feed = source(url)
    thursday = await feed.fetch(date(2026, 12, 3))
    repeated = only(thursday)  # listed under its first day, with the longest abstract
    assert repeated.title == "Repeated entry"
    assert repeated.abstract == "A longer abstract of the same entry."
    friday = await feed.fetch(date(2026, 12, 4))
    by_doi = only(friday)
    assert by_doi.key == "doi:10.5555/abc"
    assert by_doi.categories == ("one", "two")
    # each day's listing warns about its own entries only
    assert [w for w in thursday.warnings if "listed twice" in w] == [
        "'Repeated entry' is listed twice: kept once"
    ]
    assert [w for w in friday.warnings if "listed twice" in w] == [
        "'By DOI, again' is listed twice: kept once"
    ]


async def test_a_doi_only_journal_entry_is_keyed_by_its_doi(server: FeedServer) -> None:
    items = (
        "<item><title>Invented results on soil fungi</title>"
        "<link>https://journal.example.com/doi/full/10.5555/SOIL.2026.77</link>"
        "<dc:creator>Lena Fischer and Omar Haddad</dc:creator></item>"
    )
    url = server.serve("/soil.rss", rss(items).encode())
    paper = only(await source(url).fetch(date(2026, 12, 4)))
    assert paper.key == "doi:10.5555/soil.2026.77"
    assert paper.doi == "10.5555/soil.2026.77"
    assert paper.arxiv_id is None
    assert paper.authors == ("Lena Fischer", "Omar Haddad")


async def test_an_entry_linking_an_arxiv_abstract_is_keyed_by_its_arxiv_id(
    server: FeedServer,
) -> None:
    items = (
        "<item><title>A lab's post on its new preprint</title>"
        "<link>https://arxiv.org/abs/2612.04567v2</link><guid>post-88</guid></item>"
        "<item><title>An old-style id</title><guid>oai:arXiv.org:hep-th/9901001v3</guid></item>"
    )
    url = server.serve("/preprints.rss", rss(items).encode())
    first, second = (await source(url).fetch(date(2026, 12, 4))).papers
    assert (first.key, first.arxiv_id, first.version) == ("2612.04567", "2612.04567", 2)
    assert first.link == "https://arxiv.org/abs/2612.04567v2"
    assert (second.key, second.version) == ("hep-th/9901001", 3)


async def test_a_past_day_older_than_the_feed_says_so(server: FeedServer) -> None:
    url = server.serve("/jin/latest.xml", fixture("rss20.xml"))
    listing = await source(url).fetch(date(2026, 11, 20))
    assert listing.papers == ()
    assert any("oldest entry is of 2026-12-04" in w for w in listing.warnings)


async def test_a_missing_feed_fails_with_the_source_name_in_the_hint(server: FeedServer) -> None:
    url = server.base + "/gone.rss"
    with pytest.raises(SourceError) as caught:
        await source(url).fetch(date(2026, 12, 4))
    assert "HTTP 404" in str(caught.value)
    assert caught.value.hint == "the feed is gone: check the url of source 'neuro' in the config"


async def test_a_failing_server_is_retried_and_the_user_agent_is_ours(server: FeedServer) -> None:
    url = server.serve("/jin/latest.xml", fixture("rss20.xml"))
    server.fail("/jin/latest.xml", 503, times=2, headers={"Retry-After": "0"})
    agent = "paper-digest/test (+mailto:digest@example.org)"
    listing = await source(url, user_agent=agent).fetch(date(2026, 12, 4))
    assert len(listing.papers) == 2
    assert server.requests == ["/jin/latest.xml"] * 3
    assert server.user_agents == [agent] * 3
    server.fail("/jin/latest.xml", 503, times=3)
    with pytest.raises(SourceError, match="HTTP 503"):
        await source(url).fetch(date(2026, 12, 4))


async def test_the_feed_is_fetched_conditionally(server: FeedServer) -> None:
    etag = '"jin-2026-12-04"'
    url = server.serve("/jin/latest.xml", fixture("rss20.xml"), headers={"ETag": etag})
    validators: Validators = {}
    first = source(url, validators=validators, cache_seconds=0.0)
    assert len((await first.fetch(date(2026, 12, 4))).papers) == 2
    assert validators == {url: (etag, None)}
    # The same source reads the feed it holds again on a 304...
    assert len((await first.fetch(date(2026, 12, 4))).papers) == 2
    # ...a new one (the next run) has nothing new: the run keeps what it stored.
    with pytest.raises(NotModified):
        await source(url, validators=validators).fetch(date(2026, 12, 4))
    assert server.conditions == ["", etag, etag]


async def test_a_minimum_interval_spaces_the_requests(server: FeedServer, tmp_path: Path) -> None:
    url = server.serve("/jin/latest.xml", fixture("rss20.xml"))
    feed = source(url, min_interval=0.3, gate_dir=tmp_path, cache_seconds=0.0)
    started = time.monotonic()
    await feed.fetch(date(2026, 12, 3))
    await feed.fetch(date(2026, 12, 4))
    assert len(server.times) == 2
    assert server.times[1] - server.times[0] >= 0.29
    assert time.monotonic() - started < 5


async def test_the_default_user_agent_is_the_projects(server: FeedServer) -> None:
    url = server.serve("/jin/latest.xml", fixture("rss20.xml"))
    await source(url).fetch(date(2026, 12, 4))
    assert server.user_agents[0].startswith("paper-digest/")
    assert repr(source(url)) == f"FeedSource('neuro', {url!r})"
