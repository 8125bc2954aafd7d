"""``digest sources``: each configured source (and one the database knows but the config no
longer names) with its last fetch, last success, stored papers, failures in a row and last
error, as a table and as JSON; the state is what real fetches (file sources, an arXiv
source on a Saturday) recorded through :class:`SourceSet` in a real database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.config import load
from digest.models import Listing, Paper
from digest.run.fetch import NamedSource, SourceSet
from digest.run.source_health import runs_failed, sources_health
from digest.sources import ArxivSource, FileSource
from digest.store import RunRecord, SourceState, Store
from tests.support.listings import item, write_days
from tests.support.site import digest

MON, TUE, WED, SAT = date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 21)
T0 = datetime(2026, 11, 16, 7, tzinfo=UTC)

CONFIG = """database = "{db}"
[[sources]]
name = "hf"
kind = "huggingface"

[[sources]]
name = "arxiv-ml"
kind = "arxiv"
categories = ["cs.LG", "stat.ML"]

[[sources]]
name = "local"
kind = "file"
path = "local"

[[sources]]
name = "mirror"
kind = "file"
path = "mirror"

[[sources]]
name = "old"
kind = "feed"
url = "https://example.org/old.rss"
enabled = false
"""


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Path:
    write_days(
        tmp_path / "local",
        {
            MON.isoformat(): [item("2611.00001", "Diffusion one"), item("2611.00002", "Zwei")],
            TUE.isoformat(): [item("2611.00003", "Équivariant <b>nets</b>")],
            WED.isoformat(): [item("2611.00004", "Four"), item("2611.00001", "Diffusion one")],
        },
    )
    mirror = write_days(
        tmp_path / "mirror", {MON.isoformat(): [item("2611.00001", "Diffusion one")]}
    )
    for day in (TUE, WED):
        (mirror / f"{day}.json").write_text("<html>502 Bad Gateway</html>", "utf-8")
    (tmp_path / "config.toml").write_text(CONFIG.format(db=db_url), "utf-8")
    return tmp_path


async def fetch_runs(site: Path) -> None:
    """Three recorded runs (Monday ok; Tuesday and Wednesday: the mirror serves an HTML
    page), then a run for a Saturday in which the arXiv source has no announcement."""
    cfg = load(site / "config.toml")
    local = NamedSource("local", "file", FileSource(site / "local"))
    mirror = NamedSource("mirror", "file", FileSource(site / "mirror"))
    arxiv = NamedSource("arxiv-ml", "arxiv", ArxivSource("arxiv-ml", ["cs.LG", "stat.ML"]))
    with Store(cfg.database) as store:
        for n, (day, sources) in enumerate(
            [(MON, [local, mirror]), (TUE, [local, mirror]), (WED, [local, mirror]),
             (SAT, [arxiv])]
        ):  # fmt: skip
            now = T0 + timedelta(days=n)
            run_id = store.run_log.start_run(day, now, "test", 1)
            listing = await SourceSet(sources, store=store, now=now).fetch(day)
            for part in listing.parts:
                store.papers.save_listing(part, now)
            store.run_log.finish_run(run_id, now + timedelta(minutes=1), "ok")
        # A source the config no longer names, whose last fetch failed.
        store.papers.save_listing(
            Listing(MON, (Paper(key="2611.00009", title="Gone", arxiv_id="2611.00009"),), "gone"),
            T0,
        )
        store.sources.record_ok("gone", "feed", MON, 1, T0)
        store.sources.record_failure("gone", "feed", "\x1b[2Jboom\nsecond line \u202e", T0)


async def test_digest_sources_lists_each_source_with_its_state(site: Path) -> None:
    await fetch_runs(site)
    result = digest(site, "sources")
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.split("  ")[0] == "NAME"
    assert [line.split()[0] for line in lines] == [
        "hf",
        "arxiv-ml",
        "local",
        "mirror",
        "old",
        "gone",
    ]
    by_name = {line.split()[0]: " ".join(line.split()) for line in lines}
    assert by_name["hf"] == "hf huggingface yes never never 0 0 -"
    sat = T0 + timedelta(days=3)
    assert by_name["arxiv-ml"] == (
        f"arxiv-ml arxiv yes {sat:%Y-%m-%d %H:%M} UTC {sat:%Y-%m-%d %H:%M} UTC"
        " (0 papers: weekend or holiday?) 0 0 -"
    )
    wed = T0 + timedelta(days=2)
    # four papers: 2611.00001 listed on Monday and again on Wednesday counts once
    assert by_name["local"].startswith(
        f"local file yes {wed:%Y-%m-%d %H:%M} UTC {wed:%Y-%m-%d %H:%M} UTC (2 papers) 4 0 -"
    )
    mon = T0
    # Tuesday and Wednesday failed, and Wednesday's run fetched Tuesday again: 3 fetches, 2 runs
    assert by_name["mirror"].startswith(
        f"mirror file yes {wed:%Y-%m-%d %H:%M} UTC {mon:%Y-%m-%d %H:%M} UTC 1 3 (2 run(s))"
        f" {wed:%Y-%m-%d %H:%M} UTC: "
    )
    assert "HTML" in by_name["mirror"]
    assert by_name["old"] == "old feed no never never 0 0 -"
    assert by_name["gone"].startswith("gone feed removed ")
    # the error's control characters are shown escaped, its line breaks as spaces
    assert "\\x1b[2Jboom second line \\u202e" in by_name["gone"]
    assert "\x1b" not in result.output and "\u202e" not in result.output


async def test_digest_sources_json(site: Path) -> None:
    await fetch_runs(site)
    result = digest(site, "sources", "--json")
    assert result.exit_code == 0, result.output
    found = {s["name"]: s for s in json.loads(result.output)}
    assert list(found) == ["hf", "arxiv-ml", "local", "mirror", "old", "gone"]
    mirror = found["mirror"]
    assert (mirror["status"], mirror["failures_in_a_row"], mirror["fetch_failures_in_a_row"]) == (
        "failing",
        2,
        3,
    )
    assert mirror["location"] == str(site / "mirror")
    assert mirror["last_ok"] == T0.isoformat() and mirror["papers"] == 1
    assert (found["arxiv-ml"]["status"], found["arxiv-ml"]["quiet"]) == ("ok", True)
    assert found["arxiv-ml"]["location"] == "https://rss.arxiv.org/rss/cs.LG+stat.ML"
    assert (found["local"]["status"], found["local"]["quiet"], found["local"]["papers"]) == (
        "ok",
        False,
        4,
    )
    assert found["hf"]["status"] == "unknown" and found["hf"]["last_fetch"] is None
    assert found["old"]["status"] == "disabled" and found["old"]["enabled"] is False
    gone = found["gone"]
    assert (gone["status"], gone["kind"], gone["papers"]) == ("removed", "feed", 1)
    assert gone["last_error"] == "\x1b[2Jboom\nsecond line \u202e"


def test_digest_sources_before_any_fetch(site: Path) -> None:
    result = digest(site, "sources")
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 6  # the header and the five configured
    assert all(" never " in line for line in result.output.splitlines()[1:])
    cfg = load(site / "config.toml")
    with Store(cfg.database) as store:
        assert [h.status for h in sources_health(cfg, store)] == [
            "unknown",
            "unknown",
            "unknown",
            "unknown",
            "disabled",
        ]


def _run(n: int, at: datetime, outcome: str = "ok") -> RunRecord:
    return RunRecord(n, at.date(), at, at + timedelta(minutes=1), outcome, None, None, 0, 0, 0, 0)


def _state(**kw: object) -> SourceState:
    return SourceState(name="s", kind="feed", first_seen=T0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        # ok now: no failed run
        (_state(last_ok_at=T0 + timedelta(hours=3), last_fetch_at=T0 + timedelta(hours=3)), 0),
        # failed since the run at hour 1 succeeded: runs at hours 2, 3 and 4
        (
            _state(
                last_ok_at=T0 + timedelta(hours=1),
                last_fetch_at=T0 + timedelta(hours=4),
                failures=5,
            ),
            3,
        ),
        # never worked, first seen at hour 2: that run and the two after
        (
            SourceState("s", "feed", T0 + timedelta(hours=2), T0 + timedelta(hours=4), failures=3),
            3,
        ),
        # disabled after its failing run at hour 2: the later runs did not fetch it
        (
            _state(
                last_ok_at=T0 + timedelta(hours=1),
                last_fetch_at=T0 + timedelta(hours=2),
                failures=1,
            ),
            1,
        ),
    ],
)
def test_runs_failed_counts_the_runs_since_the_last_success(
    state: SourceState, expected: int
) -> None:
    # newest first: another process's run still going (passed over), then hours 4 to 0
    runs = [_run(6, T0 + timedelta(hours=6), "running")]
    runs += [_run(n, T0 + timedelta(hours=n)) for n in range(4, -1, -1)]
    assert runs_failed(state, runs) == expected
