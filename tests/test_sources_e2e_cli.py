"""Three sources at once through ``digest run --date`` (the CLI, in-process, on the real
clock: November 2026 is in the past, so arXiv's dates come from its query API), and an
older database (``tests/fixtures/legacy/today.sql``) upgraded under three sources with
nothing sent before sent again. Real local servers, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from digest.config import load
from digest.store import Store
from tests.support.listings import item
from tests.support.site import digest
from tests.support.sources_site import FeedEntry, ThreeSources, arxiv_rss, rss_item
from tests.test_migrations import load_legacy
from tests.test_sources_e2e import (
    F1,
    HF,
    JOURNAL,
    P1,
    P2,
    P3,
    P5,
    P6,
    READERS,
    RECORDS,
    THU,
    TITLES,
    WED,
    utc,
)


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[ThreeSources]:
    with ThreeSources(tmp_path, db_url, READERS, today=date(2026, 11, 22)) as running:
        running.arxiv.papers = list(RECORDS)
        # today's feed (not these dates'): a run for a past date never reads it
        running.arxiv.rss = arxiv_rss(date(2026, 12, 7), [])
        yield running


def test_digest_run_of_past_dates_reads_arxivs_api_and_sends_each_paper_once(
    site: ThreeSources,
) -> None:
    for day in (WED, THU):
        site.hf.days[day.isoformat()] = HF[day]
    site.publish_feed(e for e in JOURNAL if e.published.date() <= THU)

    wed = digest(site.folder, "run", "--date", WED.isoformat())
    assert wed.exit_code == 0, wed.output
    assert site.received(TITLES) == {
        "ada@example.org": sorted([P1, P2, P3, F1]),
        "bob@example.org": sorted([P3, P5]),
        "dee@example.org": sorted([P1, P2]),
    }
    assert "fetched 5 papers, 5 new" in wed.output
    thu = digest(site.folder, "run", "--date", THU.isoformat())
    assert thu.exit_code == 0, thu.output
    assert site.received(TITLES) == {
        "ada@example.org": sorted([P6, "Video Diffusion Transformers"]),
        "bob@example.org": [P6],
        "cy@example.org": ["Language in the Songbird Brain"],
        "dee@example.org": ["Video Diffusion Transformers"],
    }
    again = digest(site.folder, "run", "--date", THU.isoformat())
    assert again.exit_code == 0 and site.received(TITLES) == {}

    assert site.arxiv.requests and all(r.startswith("/api/query") for r in site.arxiv.requests)
    public = site.folder / "public"
    assert {p.name for p in (public / "feeds").glob("*.xml")} >= {
        "hf.xml",
        "arxiv-ml.xml",
        "neuro.xml",
    }


async def test_an_older_database_upgrades_under_three_sources_with_nothing_sent_again(
    site: ThreeSources, db_url: str, tmp_path: Path
) -> None:
    """The legacy database: ada and bob (diffusion) were sent 2511.00001 and 2511.00002 on
    2026-11-16; their digests of 2511.00003 (2026-11-17) are still pending. Now Hugging Face
    lists 00001 and 00003 again, arXiv 00002 as v2 and the feed links 00001's abs page: the
    pending digests go (once), and the new ones hold only what each reader never had (bob
    now reads only arXiv, about language: nothing new)."""
    load_legacy(db_url, tmp_path)
    site.hf.days[WED.isoformat()] = [
        item("2511.00001", "Diffusion one", upvotes=40),
        item("2511.00003", "Diffusion 3"),
        item("2611.09002", P2),
    ]
    site.arxiv.papers = []
    site.arxiv.rss = arxiv_rss(
        WED, [rss_item("2511.00002", "Diffusion two", "", ["cs.LG"], announce="replace", day=WED)]
    )
    site.publish_feed(
        [
            FeedEntry("Diffusion one", "https://arxiv.org/abs/2511.00001v3", utc("2026-11-18")),
            FeedEntry(F1, "https://jin.example.org/articles/f1", utc("2026-11-18 09:00")),
        ]
    )
    legacy = ("Diffusion one", "Diffusion two", "Diffusion 3")

    report = await site.run(WED)
    assert report.resumed == 2  # the digests of 2026-11-17 left pending by the old code
    assert report.fetched == 5 and report.new == 2  # P2 and F1
    assert site.received((*legacy, P2, F1)) == {
        "ada@example.org": sorted(["Diffusion 3", P2, F1]),
        "bob@example.org": ["Diffusion 3"],
        "dee@example.org": sorted(["Diffusion one", "Diffusion 3", P2]),
    }
    again = await site.run(WED)
    assert again.resumed == 0 and site.received((*legacy, P2, F1)) == {}
    with Store(load(site.config_path).database) as store:
        assert {s.name for s in store.sources.states()} == {"hf", "arxiv-ml", "neuro"}
        one = store.papers.papers_by_key(["2511.00001"])["2511.00001"]
    assert set(one.sources) >= {"hf", "neuro"} and one.upvotes == 40


def test_a_dry_run_matches_from_every_source_and_records_nothing(site: ThreeSources) -> None:
    """``digest run --dry-run`` of Thursday after Wednesday's run: each reader's count from
    the sources they chose (P1 listed again is not counted for those who had it), and
    neither the listing nor the sources' state is written."""
    for day in (WED, THU):
        site.hf.days[day.isoformat()] = HF[day]
    site.publish_feed(e for e in JOURNAL if e.published.date() <= THU)
    assert digest(site.folder, "run", "--date", WED.isoformat()).exit_code == 0
    site.received(TITLES)
    with Store(load(site.config_path).database) as store:
        before = store.sources.states()

    dry = digest(site.folder, "run", "--date", THU.isoformat(), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "ada@example.org: 2 matched, would send" in dry.output  # P6, P4 (not P1 again)
    assert "bob@example.org: 1 matched, would send" in dry.output  # P6: arXiv only
    assert "cy@example.org: 1 matched, would send" in dry.output  # F2
    assert "dee@example.org: 1 matched, would send" in dry.output  # P4: HF only
    assert site.received(TITLES) == {}
    with Store(load(site.config_path).database) as store:
        assert store.sources.states() == before
        assert store.papers.listing(THU) is None
