"""Private feeds of readers who like or dislike papers (issue 17), in real ``digest run``s
and on the web: a liked or disliked paper is never in their feed, even one their queries
match; a reader whose likes touch none of their queries' papers reads their queries' file;
readers of the same content share one file, named by it; picks are bounded per listing date
as digests are; a change of queries on the manage page points the feed at the right content
at once, likes counted.
"""

from __future__ import annotations

import os
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from digest.store.like_rows import LikeEntry
from tests.support.listings import write_days
from tests.support.site import config_text, digest
from tests.test_feedback import csrf_of
from tests.test_feedback_feed import entry_links
from tests.test_ranking_run import DAYS, GRAPH_PAPERS, LIKED
from tests.test_web import App, active, app

__all__ = ["app"]  # the web fixture of tests/test_web.py

ATOM = "{http://www.w3.org/2005/Atom}"
RETRIEVAL = {
    "Dense Retrieval with Query Encoders",
    "Passage Ranking at Scale",
    "Graph-Based Dense Retrieval of Passages",
    "Query Encoders for Passage Retrieval",
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site over the two days of tests/test_ranking_run.py, with readers of "retrieval"
    (hal likes nothing; ivy dislikes one of its papers; joe dislikes a paper it does not
    match; kim liked one of its papers, named by its versioned arXiv id) and readers
    without keywords who like one graph paper (grace and gus alike; pia with one paper a
    digest), after both days' runs."""
    listings = write_days(tmp_path / "listings", DAYS)
    (tmp_path / "config.toml").write_text(config_text(listings), "utf-8")
    readers = {
        "hal": ["--keyword", "retrieval"],
        "ivy": ["--keyword", "retrieval"],
        "joe": ["--keyword", "retrieval"],
        "kim": ["--keyword", "retrieval"],
        "grace": [],
        "gus": [],
        "pia": ["--max-papers", "1"],
    }
    for name, args in readers.items():
        ok(tmp_path, "subscribers", "add", f"{name}@example.org", *args)
    ok(tmp_path, "subscribers", "dislike", "ivy@example.org", "2511.10003")
    ok(tmp_path, "subscribers", "dislike", "joe@example.org", "2511.10005")
    ok(tmp_path, "subscribers", "like", "kim@example.org", "2511.20004v1")
    for name in ("grace", "gus", "pia"):
        ok(tmp_path, "subscribers", "like", f"{name}@example.org", "2511.10002")
    ok(tmp_path, "run", "--date", "2026-11-16")
    ok(tmp_path, "run", "--date", "2026-11-17")
    return tmp_path


def ok(site: Path, *args: str) -> None:
    done = digest(site, *args)
    assert done.exit_code == 0, done.output


def token_of(db: Path, email: str) -> str:
    with sqlite3.connect(db) as conn:
        (token,) = conn.execute(
            "SELECT token FROM subscribers WHERE email = ?", (email,)
        ).fetchone()
    return str(token)


def feed_of(site: Path, name: str) -> tuple[str, dict[str, str]]:
    """Where ``name``'s private Atom feed link points, and its entries: title -> content."""
    link = site / "public" / "feeds" / f"{token_of(site / 'digest.db', name + '@example.org')}.atom"
    root = ET.parse(link).getroot()
    entries = {
        e.findtext(f"{ATOM}title") or "": e.findtext(f"{ATOM}content") or ""
        for e in root.iter(f"{ATOM}entry")
    }
    return os.readlink(link), entries


def test_a_liked_or_disliked_paper_is_never_in_the_readers_feed(site: Path) -> None:
    hal_file, hal = feed_of(site, "hal")
    assert set(hal) == RETRIEVAL and hal_file.startswith("shared/")
    ivy_file, ivy = feed_of(site, "ivy")  # her dislike is among hal's papers: not for her
    assert set(ivy) == RETRIEVAL - {"Dense Retrieval with Query Encoders"}
    assert ivy_file != hal_file and ivy_file.startswith(hal_file.removesuffix(".atom") + "-")
    kim_file, kim = feed_of(site, "kim")  # liked as 2511.20004v1: the paper all the same
    assert "Query Encoders for Passage Retrieval" not in kim
    assert set(kim) >= RETRIEVAL - {"Query Encoders for Passage Retrieval"}
    assert kim_file not in (hal_file, ivy_file)
    for name in ("grace", "gus", "pia"):
        assert LIKED not in feed_of(site, name)[1]


def test_a_reader_whose_likes_touch_none_of_the_files_papers_shares_it(site: Path) -> None:
    hal_file, hal = feed_of(site, "hal")
    joe_file, joe = feed_of(site, "joe")  # his dislike is a protein paper
    assert joe_file == hal_file and joe == hal


def test_readers_of_the_same_picks_share_one_file_named_by_its_content(site: Path) -> None:
    grace_file, grace = feed_of(site, "grace")
    gus_file, gus = feed_of(site, "gus")
    assert gus_file == grace_file and gus == grace
    assert set(grace) >= GRAPH_PAPERS and not any("Protein" in t for t in grace)
    for html in grace.values():  # each pick says why, with its feedback links
        assert re.search(r"like “Graphs &lt; Trees.*\d+% similar", html), html
        assert "/more?token=" in html and "/less?token=" in html
    shared = site / "public" / "feeds" / "shared"
    named = {p.name for p in shared.iterdir() if p.suffix == ".atom" and "-" in p.name}
    own = {os.path.basename(feed_of(site, n)[0]) for n in ("ivy", "kim", "grace", "pia")}
    assert named == own and len(own) == 4  # one file for grace and gus


def test_picks_are_bounded_per_listing_date_as_digests_are(site: Path) -> None:
    link = site / "public" / "feeds" / f"{token_of(site / 'digest.db', 'pia@example.org')}.atom"
    dates = [e.findtext(f"{ATOM}published") for e in ET.parse(link).getroot().iter(f"{ATOM}entry")]
    assert dates and len(dates) == len(set(dates)), dates  # one paper a digest: one a date
    _, pia = feed_of(site, "pia")
    _, grace = feed_of(site, "grace")
    assert set(pia) < set(grace)  # her best of each date


def test_an_unchanged_readers_feed_is_not_written_again(site: Path) -> None:
    target = site / "public" / "feeds" / feed_of(site, "grace")[0]
    written = target.stat().st_mtime_ns
    ok(site, "feed")
    assert feed_of(site, "grace")[0] == os.path.relpath(target, site / "public" / "feeds")
    assert target.stat().st_mtime_ns == written


# -- the web ---------------------------------------------------------------------------------


async def test_a_query_change_on_the_web_keeps_likes_out_of_the_feed_at_once(app: App) -> None:
    ada = await active(app, "ada@example.org")  # both read "diffusion": one shared file
    bo = await active(app, "bo@example.org")
    assert ada.id is not None
    feeds = app.ctx.config.feeds.dir / "feeds"
    assert os.readlink(feeds / f"{ada.token}.atom") == os.readlink(feeds / f"{bo.token}.atom")
    app.store.likes.add(ada.id, [LikeEntry("2611.00001")], "dislike", "email")
    saved = await app.save(ada, keywords="diffusion\nrobots")
    assert saved.status_code == 200 and "Saved." in saved.text
    served = await app.client.get(f"/feeds/{ada.token}.atom")
    assert served.status_code == 200
    titles = [
        e.findtext(f"{ATOM}title") for e in ET.fromstring(served.content).iter(f"{ATOM}entry")
    ]
    assert len(titles) == 2 and "A survey of robots" in titles  # with the hostile title,
    assert "Diffusion models for proteins" not in titles  # not the paper she disliked
    on_disk = ET.parse(feeds / f"{ada.token}.atom").getroot()
    assert [e.findtext(f"{ATOM}title") for e in on_disk.iter(f"{ATOM}entry")] == titles
    bo_feed = await app.client.get(f"/feeds/{bo.token}.atom")
    assert "Diffusion models for proteins" in bo_feed.text  # his queries' feed, as before


async def test_less_like_this_from_the_feed_takes_the_paper_out_of_it_at_once(app: App) -> None:
    ada = await active(app, "ada@example.org")
    served = await app.client.get(f"/feeds/{ada.token}.atom")
    assert "Diffusion models for proteins" in titles_of(served.content)
    less = [
        token
        for links, title in zip(entry_links(served.content), titles_of(served.content), strict=True)
        for kind, token in links
        if kind == "less" and title == "Diffusion models for proteins"
    ]
    page = await app.client.get(f"/less?token={less[0]}")
    await app.client.post(f"/less?token={less[0]}", data={"csrf": csrf_of(page)})
    after = await app.client.get(f"/feeds/{ada.token}.atom")
    assert "Diffusion models for proteins" not in titles_of(after.content)
    undo = await app.client.get(f"/less?token={less[0]}")
    await app.client.post(f"/less?token={less[0]}", data={"csrf": csrf_of(undo), "action": "undo"})
    again = await app.client.get(f"/feeds/{ada.token}.atom")
    assert "Diffusion models for proteins" in titles_of(again.content)


def titles_of(feed: bytes) -> list[str]:
    return [e.findtext(f"{ATOM}title") or "" for e in ET.fromstring(feed).iter(f"{ATOM}entry")]
