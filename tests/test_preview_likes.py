"""``digest preview --like ID... [--days N]`` and ``digest preview --subscriber EMAIL`` on a
real site (issue 17): what likes (and a subscriber's keywords with them) would have brought
from the stored days, ranked, each with why, and not one row of the database changed."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from tests.support.listings import write_days
from tests.support.site import config_text, digest
from tests.test_ranking_run import DAYS, GRAPH_PAPERS, LIKED

PICK = re.compile(r'^  (?P<id>\S+)  (?P<title>.+)  \(like "(?P<like>.+)", (?P<pc>\d+)% similar\)$')


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Both days of tests/test_ranking_run stored (sent to ada); hal reads retrieval."""
    listings = write_days(tmp_path / "listings", DAYS)
    (tmp_path / "config.toml").write_text(config_text(listings), "utf-8")
    for day in DAYS:
        assert digest(tmp_path, "run", "--date", day).exit_code == 0
    added = digest(tmp_path, "subscribers", "add", "hal@example.org", "--keyword", "retrieval")
    assert added.exit_code == 0, added.output
    return tmp_path


def rows(site: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table (what must not change)."""
    with sqlite3.connect(site / "digest.db") as conn:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"'), key=repr) for n in names}


def days_of(output: str) -> dict[str, list[str]]:
    """The preview's lines under each date's heading."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in output.splitlines():
        if re.match(r"^\d{4}-\d\d-\d\d: ", line):
            current = line[:10]
            found[current] = []
        elif current:
            found[current].append(line)
    return found


def test_likes_preview_ranks_the_stored_days_with_reasons_and_changes_nothing(
    site: Path,
) -> None:
    before = rows(site)
    shown = digest(site, "preview", "--like", "https://arxiv.org/abs/2511.10002v1")
    assert shown.exit_code == 0, shown.output
    assert rows(site) == before  # no model, no profile, no like stored
    by_day = days_of(shown.stdout)
    assert list(by_day) == ["2026-11-17", "2026-11-16"]  # the last 7 stored days, newest first
    picks = [PICK.match(line) for line in by_day["2026-11-17"]]
    assert all(picks), by_day["2026-11-17"]
    assert {m["title"] for m in picks if m} >= GRAPH_PAPERS
    assert {m["like"] for m in picks if m} == {LIKED}
    percents = [int(m["pc"]) for m in picks if m]
    assert percents == sorted(percents, reverse=True)
    older = [PICK.match(line) for line in by_day["2026-11-16"]]
    assert all(older) and "2511.10002" not in {m["id"] for m in older if m}  # the like itself
    assert "Protein" not in shown.stdout

    one_day = digest(site, "preview", "--like", "2511.10002", "--days", "1")
    assert list(days_of(one_day.stdout)) == ["2026-11-17"]
    assert rows(site) == before


def test_a_subscribers_preview_has_their_keywords_then_their_likes(site: Path) -> None:
    assert digest(site, "subscribers", "like", "hal@example.org", "2511.10001").exit_code == 0
    before = rows(site)
    shown = digest(site, "preview", "--subscriber", "hal@example.org")
    assert shown.exit_code == 0, shown.output
    assert rows(site) == before  # his profile made in memory, not stored
    newest = days_of(shown.stdout)["2026-11-17"]
    assert newest[:2] == [
        "  2511.20003  Graph-Based Dense Retrieval of Passages  [retrieval]",
        "  2511.20004  Query Encoders for Passage Retrieval  [retrieval]",
    ]
    picks = [PICK.match(line) for line in newest[2:]]
    assert picks and all(picks) and {m["title"] for m in picks if m} <= GRAPH_PAPERS
    assert {m["like"] for m in picks if m} == {DAYS["2026-11-16"][0]["title"]}


def test_a_subscriber_without_likes_previews_their_keywords(site: Path) -> None:
    shown = digest(site, "preview", "--subscriber", "hal@example.org", "--days", "1")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == [
        "2026-11-17: 2 of 6 papers",
        "  2511.20003  Graph-Based Dense Retrieval of Passages  [retrieval]",
        "  2511.20004  Query Encoders for Passage Retrieval  [retrieval]",
    ]


def test_unknown_ids_and_subscribers_are_clear_errors(site: Path) -> None:
    before = rows(site)
    partly = digest(site, "preview", "--like", "2511.10002", "--like", "2599.99999")
    assert partly.exit_code == 0, partly.output
    assert "warning: --like 2599.99999: no stored paper has this id" in partly.stderr
    none = digest(site, "preview", "--like", "2599.99999")
    assert none.exit_code == 1
    assert "error: none of the --like ids names a stored paper" in none.stderr
    nobody = digest(site, "preview", "--subscriber", "nobody@example.org")
    assert nobody.exit_code == 1
    assert "error: no subscriber nobody@example.org" in nobody.stderr
    assert "Traceback" not in none.output + nobody.output
    assert rows(site) == before


def test_the_query_preview_is_unchanged(site: Path) -> None:
    shown = digest(site, "preview", "--keywords", "retrieval")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == [
        "2026-11-17: 2 of 6 papers",
        "  2511.20003  Graph-Based Dense Retrieval of Passages  [retrieval]",
        "  2511.20004  Query Encoders for Passage Retrieval  [retrieval]",
    ]
