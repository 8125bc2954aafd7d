"""Faults, per source: ``digest run`` names each failed source, ``digest status`` too, a quiet
arXiv day is no failure, and the admin alert counts failures per source (a source failing
alone alerts after ``mail.alert_after`` runs in a row in which it failed; every source
failing alerts as one failed run does). End to end through the CLI on a real database and
file sources whose files break and mend."""

from __future__ import annotations

import json
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.listings import item, write_days
from tests.support.site import digest, outbox

START = date(2026, 11, 16)  # a Monday
DAYS = [(START + timedelta(days=n)).isoformat() for n in range(10)]
BROKEN = "<html><h1>502 Bad Gateway</h1></html>"

CONFIG = """database = "{db}"
[[sources]]
name = "local"
kind = "file"
path = "local"

[[sources]]
name = "mirror"
kind = "file"
path = "mirror"

[mail]
from = "Paper Digest <digest@example.org>"
outbox_dir = "outbox"
admin = "ops@example.org"
alert_after = 2

[[subscribers]]
email = "ada@example.org"
keywords = ["diffusion"]
"""


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Path:
    write_days(
        tmp_path / "local",
        {d: [item(f"2611.{n:05d}", f"Diffusion local {n}")] for n, d in enumerate(DAYS)},
    )
    write_days(
        tmp_path / "mirror",
        {d: [item(f"2611.{n + 100:05d}", f"Diffusion mirror {n}")] for n, d in enumerate(DAYS)},
    )
    (tmp_path / "config.toml").write_text(CONFIG.format(db=db_url), "utf-8")
    return tmp_path


def break_(site: Path, source: str, *days: str) -> None:
    for day in days:
        (site / source / f"{day}.json").write_text(BROKEN, "utf-8")


def mend(site: Path, source: str, *days: str) -> None:
    offset = 100 if source == "mirror" else 0
    for day in days:
        n = DAYS.index(day)
        write_days(site / source, {day: [item(f"2611.{n + offset:05d}", f"Diffusion {n}")]})


def alerts(site: Path) -> list[EmailMessage]:
    return [m for m in outbox(site) if m["To"] == "ops@example.org"]


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_source_failing_alone_is_named_and_alerted_after_its_runs_in_a_row(site: Path) -> None:
    assert digest(site, "run", "--date", DAYS[0]).exit_code == 0
    break_(site, "mirror", *DAYS[1:4])

    first = digest(site, "run", "--date", DAYS[1])
    assert first.exit_code == 0, first.output  # the other source's papers went out
    assert "fetched 1 papers" in first.stdout
    [line] = [x for x in first.stdout.splitlines() if x.startswith("  source ")]
    assert line.startswith("  source mirror failed: ") and "HTML" in line
    assert "warning: source mirror failed" not in first.output  # said once, on its line
    status = digest(site, "status").stdout
    assert "listing:    ok, 1 papers" in status
    assert "sources:    local ok (1 papers), mirror failing" in status
    assert "  mirror: failing, last worked " in status
    assert "(1 run(s), 1 fetch(es) in a row)" in status
    assert alerts(site) == []  # one run: not yet

    assert digest(site, "run", "--date", DAYS[2]).exit_code == 0  # the second run: alert
    [alert] = alerts(site)
    assert alert["Subject"] == "paper-digest: source mirror failing"
    text = body(alert)
    assert "mirror: failed in 2 run(s) in a row (2 fetch(es))" in text
    assert "local" not in text
    assert digest(site, "run", "--date", DAYS[3]).exit_code == 0  # told already: nothing
    assert len(alerts(site)) == 1
    sources = json.loads(digest(site, "sources", "--json").stdout)
    assert [(s["name"], s["status"], s["failures_in_a_row"]) for s in sources] == [
        ("local", "ok", 0),
        ("mirror", "failing", 3),
    ]

    mend(site, "mirror", *DAYS[1:4])
    back = digest(site, "run", "--date", DAYS[4])
    assert back.exit_code == 0, back.output
    assert "fetched 2 papers" in back.stdout and "source mirror failed" not in back.output
    assert [a["Subject"] for a in alerts(site)] == [
        "paper-digest: source mirror failing",
        "paper-digest: source mirror works again",
    ]
    assert "Source mirror works again." in body(alerts(site)[-1])
    assert "mirror failing" not in digest(site, "status").stdout
    # the subscriber got a digest from every run, never an alert
    titles = [m["Subject"] for m in outbox(site) if m["To"] == "ada@example.org"]
    assert len(titles) == 5


def test_every_source_failing_alerts_as_failed_runs_do_counting_each_source(site: Path) -> None:
    assert digest(site, "run", "--date", DAYS[0]).exit_code == 0
    break_(site, "mirror", DAYS[1], DAYS[2])
    break_(site, "local", DAYS[2])
    assert digest(site, "run", "--date", DAYS[1]).exit_code == 0
    failed = digest(site, "run", "--date", DAYS[2])
    assert failed.exit_code == 1
    assert "local" in failed.stderr and "mirror" in failed.stderr
    # the mirror failed in two runs, but the run failed as a whole: no alert about the
    # source; the runs' alert waits for two failed runs
    assert alerts(site) == []
    assert digest(site, "run", "--date", DAYS[2]).exit_code == 1
    [alert] = alerts(site)
    assert alert["Subject"] == "paper-digest: 2 runs failed in a row"
    text = body(alert)
    assert "Sources:" in text
    assert "local: failed in 2 run(s) in a row" in text
    assert "mirror: failed in 3 run(s) in a row" in text
    status = digest(site, "status").stdout
    assert "alert:      the admin was told runs are failing" in status
    assert "(2 failed run(s) in a row)" in status

    mend(site, "local", DAYS[2])
    assert digest(site, "run", "--date", DAYS[2]).exit_code == 0  # the mirror still fails
    recovered = alerts(site)[-1]
    assert recovered["Subject"] == "paper-digest: runs succeed again"
    assert "mirror: failed in 4 run(s) in a row" in body(recovered)
    assert len(alerts(site)) == 2  # the mirror was named there: no email of its own
    mend(site, "mirror", DAYS[1], DAYS[2])
    assert digest(site, "run", "--date", DAYS[3]).exit_code == 0
    assert alerts(site)[-1]["Subject"] == "paper-digest: source mirror works again"


def test_a_quiet_arxiv_day_is_no_failure(site: Path, db_url: str) -> None:
    """An arXiv source on a Saturday: an empty listing, no request, no failure."""
    config = site / "config.toml"
    text = config.read_text("utf-8").replace(
        '[[sources]]\nname = "mirror"\nkind = "file"\npath = "mirror"\n',
        '[[sources]]\nname = "arxiv-ml"\nkind = "arxiv"\ncategories = ["cs.LG"]\n'
        'rss_url = "http://127.0.0.1:9/rss/"\napi_url = "http://127.0.0.1:9/api"\n',
    )
    config.write_text(text.replace("alert_after = 2", "alert_after = 1"), "utf-8")
    saturday = DAYS[5]
    (site / "local" / f"{saturday}.json").unlink()  # nothing local either
    quiet = digest(site, "run", "--date", saturday)
    assert quiet.exit_code == 0, quiet.output
    assert "the listing is empty (a weekend or holiday?)" in quiet.stdout
    assert "failed" not in quiet.stdout.replace("failed 0", "")
    status = digest(site, "status").stdout
    assert "listing:    listing empty (weekend or holiday?)" in status
    assert "arxiv-ml quiet (0 papers: weekend or holiday?)" in status
    assert "failing" not in status
    assert alerts(site) == []
    listed = digest(site, "sources").stdout
    assert "(0 papers: weekend or holiday?)" in listed
