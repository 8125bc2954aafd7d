"""RSS and Atom output: valid for feedparser whatever the listing held, stable ids, order."""

from __future__ import annotations

from datetime import UTC, date, datetime

import feedparser
import pytest

from digest.feeds import build_feeds, paper_id, xml_text
from digest.models import Paper, paper_key

UPDATED = datetime(2026, 11, 20, 7, tzinfo=UTC)


def paper(arxiv_id: str | None, title: str, abstract: str = "An abstract.", **kw: object) -> Paper:
    return Paper(
        key=paper_key(arxiv_id, title), title=title, abstract=abstract, arxiv_id=arxiv_id, **kw
    )  # type: ignore[arg-type]


def feeds(entries: list[tuple[date, Paper]]) -> tuple[feedparser.FeedParserDict, ...]:
    rss, atom = build_feeds(
        entries,
        title="Trending papers",
        link="https://digest.example.org/",
        rss_url="https://digest.example.org/feed.xml",
        atom_url="https://digest.example.org/feed.atom",
        description="The papers of the last days",
        updated=UPDATED,
    )
    parsed = (feedparser.parse(rss), feedparser.parse(atom))
    for p in parsed:
        assert not p.bozo, p.get("bozo_exception")
    return parsed


D1, D2 = date(2026, 11, 18), date(2026, 11, 19)


def test_entries_newest_first_each_once_with_stable_ids() -> None:
    a = paper("2511.00001", "Older paper", authors=("Zoë Ångström", "Bo Li"))
    b = paper("2511.00002", "Newer paper")
    rss, atom = feeds([(D1, a), (D1, b), (D2, b)])
    for parsed in (rss, atom):
        assert [e.title for e in parsed.entries] == ["Newer paper", "Older paper"]
        assert [e.id for e in parsed.entries] == [
            "https://arxiv.org/abs/2511.00002",
            "https://arxiv.org/abs/2511.00001",
        ]
        assert parsed.entries[0].link == "https://huggingface.co/papers/2511.00002"
    assert atom.entries[1].authors[0]["name"] == "Zoë Ångström"
    assert "Zoë Ångström" in rss.entries[1].author
    assert atom.entries[0].published_parsed[:3] == (2026, 11, 19)


def test_the_same_input_gives_the_same_bytes() -> None:
    entries = [(D1, paper("2511.00001", "A")), (D2, paper(None, "No id at all"))]
    one = build_feeds(
        entries,
        title="t",
        link="https://x.example/",
        rss_url="https://x.example/r",
        atom_url="https://x.example/a",
        description="d",
        updated=UPDATED,
    )
    two = build_feeds(
        entries,
        title="t",
        link="https://x.example/",
        rss_url="https://x.example/r",
        atom_url="https://x.example/a",
        description="d",
        updated=UPDATED,
    )
    assert one == two


def test_hostile_text_is_cleaned_and_escaped() -> None:
    nasty = paper(
        "2511.00003",
        "<script>alert(1)</script> & <b>bold</b>\r\nBcc: x@evil.example\u202e\x01",
        "Control \x00\x08\x0b\x1f\ufffe characters\ud800 and a tab\there.",
        project_page="javascript:alert(1)",
        authors=("Ada\x07 Okafor",),
    )
    rss, atom = feeds([(D1, nasty)])
    for parsed in (rss, atom):
        (entry,) = parsed.entries
        assert "\u202e" not in entry.title and "\x01" not in entry.title
        assert "javascript" not in str(entry.get("links"))
        assert "Control" in entry.summary and "\x00" not in entry.summary
    assert atom.entries[0].title.startswith("<script>alert(1)</script>")  # text, not markup


def test_a_paper_without_arxiv_id_gets_a_tag_uri() -> None:
    p = paper(None, "Naïve Bayes Is All You Need")
    assert paper_id(p, "https://digest.example.org/").startswith("tag:digest.example.org,")
    rss, atom = feeds([(D1, p)])
    assert atom.entries[0].id == rss.entries[0].id == paper_id(p, "https://digest.example.org/")


def test_an_empty_feed_is_still_valid() -> None:
    rss, atom = feeds([])
    assert rss.entries == [] and atom.feed.title == "Trending papers"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("a\x00b", "a b"), ("  two\n lines ", "two lines"), ("bidi\u202eend", "bidi end")],
)
def test_xml_text(raw: str, clean: str) -> None:
    assert xml_text(raw) == clean


def test_updated_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_feeds(
            [],
            title="t",
            link="https://x/",
            rss_url="https://x/r",
            atom_url="https://x/a",
            description="d",
            updated=datetime(2026, 1, 1),
        )


def test_a_feed_set_builds_subsets_newest_first_and_capped() -> None:
    from digest.feeds import FeedMeta, FeedSet

    papers = [(D1, paper(f"2511.0000{i}", f"Paper {i}")) for i in range(5)]
    papers.append((D2, paper("2511.00009", "Newest")))
    feeds = FeedSet(papers, link="https://x.example/", updated=UPDATED)
    meta = FeedMeta("Yours", "https://x.example/", None, None, "Mine", feed_id="tag:x,2026:f")
    rss, atom = feeds.build(meta, {"2511.00009", "2511.00001", "2511.00003"}, limit=2)
    for data in (rss, atom):
        parsed = feedparser.parse(data)
        assert not parsed.bozo
        assert [e.title for e in parsed.entries] == ["Newest", "Paper 1"]
    assert feedparser.parse(atom).feed.id == "tag:x,2026:f"
