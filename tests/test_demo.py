"""``digest demo`` meets the real clock: its sample listings are dated as the last listing
days up to the day it runs (injected with ``--today``, never the real clock here), and
``digest serve`` says when ``base_url`` does not lead to where it listens."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.cli.demo import listing_days
from digest.cli.serve import dead_links
from tests.support.site import digest

MONDAY = date(2026, 12, 7)


@pytest.mark.parametrize(
    ("today", "days"),
    [
        (MONDAY, ["2026-12-03", "2026-12-04", "2026-12-07"]),
        (date(2026, 12, 9), ["2026-12-07", "2026-12-08", "2026-12-09"]),
        (date(2026, 12, 12), ["2026-12-09", "2026-12-10", "2026-12-11"]),  # a Saturday
        (date(2026, 12, 13), ["2026-12-09", "2026-12-10", "2026-12-11"]),  # a Sunday
    ],
)
def test_the_listing_days_are_the_last_weekdays_up_to_today(today: date, days: list[str]) -> None:
    assert [d.isoformat() for d in listing_days(today, 3)] == days


def test_the_demo_on_a_monday_stores_listings_up_to_that_day(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--dir", str(folder), "--today", "2026-12-07"])
    assert result.exit_code == 0, result.output
    listings = sorted(p.name for p in (folder / "listings").glob("*.json"))
    assert listings == ["2026-12-03.json", "2026-12-04.json", "2026-12-07.json"]
    # The papers are the bundled ones (ids kept), their dates moved with their day.
    items = json.loads((folder / "listings" / "2026-12-07.json").read_text("utf-8"))
    assert len(items) == 25
    assert {i["publishedAt"][:10] for i in items} == {"2026-12-05", "2026-12-06", "2026-12-07"}
    assert "2026-12-07: fetched 25 papers" in result.stdout
    # Each email's file names its reader and listing date.
    for day in ("2026-12-03", "2026-12-04", "2026-12-07"):
        assert len(list((folder / "outbox").glob(f"*_{day}_ada@example.org.eml"))) == 1
    assert "--date 2026-12-07" in result.stdout
    # Every page built on the stored listings has papers: the preview of the last day...
    shown = digest(folder, "preview", "--keywords", "diffusion")
    assert shown.exit_code == 0, shown.output
    first = shown.stdout.splitlines()[0]
    assert first.startswith("2026-12-07: ") and not first.startswith("2026-12-07: 0 of")
    assert " of 25 papers" in first
    # ... and a one-off send of that day (serve fetches the same folder for today).
    sent = digest(folder, "send", "--to", "x@example.org", "--keywords", "diffusion",
                  "--date", "2026-12-07", "--out", str(tmp_path / "one.eml"))  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert "papers written to" in sent.stdout


def test_the_demo_refuses_a_today_that_is_not_a_date(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path), "--today", "monday"])
    assert result.exit_code == 2
    assert "--today" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("base_url", "host", "port", "dead"),
    [
        ("http://localhost:8000", "127.0.0.1", 8000, False),
        ("http://localhost:8000", "0.0.0.0", 8000, False),
        ("http://127.0.0.1:8000/", "::1", 8000, False),
        ("http://localhost:8000", "127.0.0.1", 8080, True),
        ("http://localhost", "127.0.0.1", 8000, True),
        ("http://localhost:8000", "192.0.2.7", 8000, True),
        ("http://192.0.2.7:8000", "192.0.2.8", 8000, True),
        ("http://192.0.2.7:8000", "0.0.0.0", 8000, False),
        # A name other than localhost may be a reverse proxy in front of us: nothing to say.
        ("https://digest.example.org", "127.0.0.1", 8000, False),
    ],
)
def test_serve_tells_when_base_url_does_not_lead_to_where_it_listens(
    base_url: str, host: str, port: int, dead: bool
) -> None:
    assert (dead_links(base_url, host, port) is not None) is dead
