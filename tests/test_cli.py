"""The ``digest`` command as an operator drives it: options, output, files and exit codes."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from digest.cli import cli
from tests.support.listings import write_days
from tests.support.mime import body_of
from tests.support.site import DAYS, config_text, digest, outbox, write_site


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config file over three days of listings, in its own folder."""
    return write_site(tmp_path)


def test_run_sends_new_matching_papers_once_and_a_rerun_sends_nothing(site: Path) -> None:
    first = digest(site, "run", "--date", "2026-11-16")
    assert first.exit_code == 0, first.output
    assert "fetched 3 papers, 3 new" in first.stdout
    assert "ada@example.org: 1 matched, sent" in first.stdout
    mails = outbox(site)
    assert len(mails) == 1
    assert mails[0]["To"] == "Ada <ada@example.org>"
    assert "Diffusion Agents Plan in Latent Space" in body_of(mails[0], "plain")

    again = digest(site, "run", "--date", "2026-11-16")
    assert again.exit_code == 0, again.output
    assert "ada@example.org: 0 matched, nothing new" in again.stdout
    assert len(outbox(site)) == 1

    second = digest(site, "run", "--date", "2026-11-17")
    assert second.exit_code == 0, second.output
    mails = outbox(site)
    assert len(mails) == 2
    text = body_of(mails[1], "plain")
    assert "Quantized Diffusion Transformers" in text
    assert "Latent Space" not in text  # sent on the 16th
    assert "MRI" not in text  # excluded


def test_empty_listing_is_normal_and_says_so(site: Path) -> None:
    result = digest(site, "run", "--date", "2026-11-18")
    assert result.exit_code == 0, result.output
    assert "empty" in result.stdout
    assert outbox(site) == []


def test_dry_run_renders_but_sends_and_records_nothing(site: Path) -> None:
    dry = digest(site, "run", "--date", "2026-11-16", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.stdout
    assert "ada@example.org: 1 matched, would send" in dry.stdout
    assert outbox(site) == []
    real = digest(site, "run", "--date", "2026-11-16")
    assert "ada@example.org: 1 matched, sent" in real.stdout
    assert len(outbox(site)) == 1


def test_run_writes_feeds_that_parse(site: Path) -> None:
    same = digest(
        site,
        "subscribers",
        "add",
        "twin@example.org",
        "--keyword",
        "diffusion",
        "--exclude",
        "medical",
    )
    assert same.exit_code == 0, same.output
    digest(site, "run", "--date", "2026-11-16")
    digest(site, "run", "--date", "2026-11-17")
    for name in ("feed.xml", "feed.atom"):
        parsed = feedparser.parse((site / "public" / name).read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert len(parsed.entries) == 5  # 00001 appears once
        assert (site / "public" / name).stat().st_mode & 0o044  # the web server can read it
    private = sorted((site / "public" / "feeds").glob("*.atom"))
    assert len(private) == 2  # the same queries, each with a feed of its own...
    assert private[0].resolve() == private[1].resolve()  # ...sharing one file
    for path in private:
        data = path.read_bytes()
        assert b"/feeds/" not in data  # no token inside: nothing of one reader leaks to another
        parsed = feedparser.parse(data)
        assert not parsed.bozo
        titles = {e.title for e in parsed.entries}
        assert titles == {
            "Diffusion Agents Plan in Latent Space",
            "Quantized Diffusion Transformers",
        }
    removed = digest(site, "subscribers", "remove", "twin@example.org")
    assert removed.exit_code == 0
    rebuilt = digest(site, "feed")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "feed.atom" in rebuilt.stdout
    assert len(list((site / "public" / "feeds").glob("*.atom"))) == 1  # the leaver's is gone


def test_send_out_writes_a_file_and_touches_no_history(site: Path) -> None:
    out = site / "one.eml"
    result = digest(
        site,
        "send",
        "--to",
        "Grace@Example.org",
        "--keywords",
        "diffusion",
        "--keywords",
        "survey",
        "--date",
        "2026-11-16",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "2 papers written" in result.stdout
    message = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert message["To"] == "grace@example.org"
    assert message["Message-ID"] and message["Date"]
    # ada's history is untouched: her digest still goes out
    run = digest(site, "run", "--date", "2026-11-16")
    assert "ada@example.org: 1 matched, sent" in run.stdout


def test_send_with_exclude_and_nothing_matching(site: Path) -> None:
    result = digest(
        site,
        "send",
        "--to",
        "grace@example.org",
        "--keywords",
        "diffusion",
        "--exclude",
        "diffusion",
        "--date",
        "2026-11-17",
    )
    assert result.exit_code == 0, result.output
    assert "nothing sent" in result.stdout
    assert outbox(site) == []


def test_send_delivers_through_the_configured_sender(site: Path) -> None:
    result = digest(site, "send", "--to", "grace@example.org", "--date", "2026-11-17")
    assert result.exit_code == 0, result.output
    mails = outbox(site)
    assert len(mails) == 1 and mails[0]["To"] == "grace@example.org"


def test_subscribers_add_list_show_remove(site: Path) -> None:
    added = digest(
        site,
        "subscribers",
        "add",
        "grace@example.org",
        "--name",
        "Grace Müller",
        "--keyword",
        '"mixture of experts"',
        "--keyword",
        "title:quantiz*",
        "--exclude",
        "medical",
        "--max-papers",
        "5",
    )
    assert added.exit_code == 0, added.output
    listed = digest(site, "subscribers", "list")
    assert listed.exit_code == 0
    assert "grace@example.org" in listed.stdout and "active" in listed.stdout
    shown = digest(site, "subscribers", "show", "grace@example.org")
    assert shown.exit_code == 0
    assert "Grace Müller" in shown.stdout and "title:quantiz*" in shown.stdout
    assert "max papers: 5" in shown.stdout

    run = digest(site, "run", "--date", "2026-11-17")
    assert "grace@example.org: 1 matched, sent" in run.stdout
    shown = digest(site, "subscribers", "show", "grace@example.org")
    assert "2026-11-17" in shown.stdout and "sent" in shown.stdout

    removed = digest(site, "subscribers", "remove", "grace@example.org")
    assert removed.exit_code == 0
    listed = digest(site, "subscribers", "list")
    assert "unsubscribed" in listed.stdout
    missing = digest(site, "subscribers", "show", "nobody@example.org")
    assert missing.exit_code == 1
    assert "no subscriber nobody@example.org" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subscribers", "add", "not-an-address"], "not-an-address"),
        (["subscribers", "add", "x@example.org", "--keyword", '"unbalanced'], "unbalanced"),
        (["subscribers", "add", "x@example.org", "--exclude", "a AND"], "--exclude"),
        (["send", "--to", "x@example.org", "--keywords", "(a OR b"], "--keywords"),
        (["run", "--date", "2026-13-01"], "YYYY-MM-DD"),
        (["run", "--bogus"], "--bogus"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(
    site: Path, args: list[str], message: str
) -> None:
    result = digest(site, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_config_errors_exit_2_naming_the_key(tmp_path: Path) -> None:
    listings = write_days(tmp_path / "listings", DAYS)
    bad = config_text(listings).replace("[feeds]", "[feeds]\ndayz = 3") + 'max_papers = "many"\n'
    (tmp_path / "config.toml").write_text(bad, "utf-8")
    result = digest(tmp_path, "run", "--date", "2026-11-16")
    assert result.exit_code == 2
    assert "feeds.dayz" in result.stderr and 'did you mean "days"' in result.stderr
    assert "max_papers" in result.stderr and "many" in result.stderr
    assert "Traceback" not in result.output


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.toml"), "run"])
    assert result.exit_code == 2
    assert "nope.toml" in result.stderr


def test_a_failing_source_exits_1_and_records_nothing(site: Path) -> None:
    text = (site / "config.toml").read_text("utf-8")
    (site / "config.toml").write_text(text.replace("listings", "no-such-folder"), "utf-8")
    result = digest(site, "run", "--date", "2026-11-16")
    assert result.exit_code == 1
    assert "no-such-folder" in result.stderr
    assert "Traceback" not in result.output
    assert outbox(site) == []


def test_broken_listing_file_exits_1_naming_it(site: Path) -> None:
    (site / "listings" / "2026-11-19.json").write_text("<!DOCTYPE html><html>oops", "utf-8")
    result = digest(site, "run", "--date", "2026-11-19")
    assert result.exit_code == 1
    assert "2026-11-19.json" in result.stderr
    listed = digest(site, "run", "--date", "2026-11-16")
    assert "sent" in listed.stdout  # nothing of the broken run was recorded


def test_config_example_and_check(site: Path) -> None:
    example = CliRunner().invoke(cli, ["config", "example"])
    assert example.exit_code == 0 and "[smtp]" in example.stdout
    check = digest(site, "config", "check")
    assert check.exit_code == 0, check.output
    assert "1 subscribers" in check.stdout and "outbox" in check.stdout


def test_demo_shows_a_digest_and_a_feed(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    emails = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert emails, result.output
    assert str(tmp_path / "demo" / "outbox") in result.stdout
    for name in ("feed.xml", "feed.atom"):
        parsed = feedparser.parse((tmp_path / "demo" / "public" / name).read_bytes())
        assert not parsed.bozo and parsed.entries
    again = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo")])
    assert again.exit_code == 0  # a second demo starts afresh
    assert len(sorted((tmp_path / "demo" / "outbox").glob("*.eml"))) == len(emails)


def test_python_m_digest_and_environment_config(site: Path) -> None:
    env = {**os.environ, "DIGEST_CONFIG": str(site / "config.toml")}
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "run", "--date", "2026-11-16"],
        capture_output=True,
        text=True,
        env=env,
        cwd=site,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sent 1" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(site / "missing.toml"), "run"],
        capture_output=True,
        text=True,
        cwd=site,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "missing.toml" in proc.stderr and "Traceback" not in proc.stderr


# -- schedules: add, show, schedule, preview, status ----------------------------------------


def test_subscribers_add_takes_a_schedule_and_show_and_schedule_print_it(site: Path) -> None:
    added = digest(
        site, "subscribers", "add", "bo@example.org", "--send-at", "07:30",
        "--timezone", "Asia/Tokyo", "--days", "mon,fri",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    weekly = digest(
        site, "subscribers", "add", "cy@example.org", "--frequency", "weekly",
        "--weekday", "Friday", "--send-at", "18:00", "--timezone", "America/New_York",
    )  # fmt: skip
    assert weekly.exit_code == 0, weekly.output
    shown = digest(site, "subscribers", "show", "bo@example.org")
    assert "schedule:   daily on mon,fri at 07:30 Asia/Tokyo" in shown.output
    assert "next send:  not placed yet" in shown.output
    schedule = digest(site, "schedule")
    assert schedule.exit_code == 0, schedule.output
    lines = {line.split("\t")[0]: line for line in schedule.output.splitlines()}
    assert "(Asia/Tokyo)" in lines["bo@example.org"] and " 07:30 JST" in lines["bo@example.org"]
    assert "weekly on fri at 18:00 America/New_York" in lines["cy@example.org"]
    local, utc = lines["cy@example.org"].split("\t")[1:3]
    assert local.startswith(utc[:10]) or local[11:16] == "18:00"
    assert "UTC" in utc
    assert "daily at 08:00 UTC" in lines["ada@example.org"]  # from the config, defaults


def test_subscribers_add_on_a_known_address_changes_only_what_it_is_given(site: Path) -> None:
    """Reinstating someone (``digest subscribers add bob@...`` after hard bounces) must not
    wipe their name, queries and schedule."""
    first = digest(
        site, "subscribers", "add", "bo@example.org", "--name", "Bo Ode", "--keyword",
        "diffusion", "--exclude", "survey", "--max-papers", "7", "--send-at", "10:30",
        "--timezone", "Asia/Tokyo", "--days", "mon,fri",
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    digest(site, "subscribers", "remove", "bo@example.org")
    again = digest(site, "subscribers", "add", "bo@example.org")
    assert again.exit_code == 0, again.output
    shown = digest(site, "subscribers", "show", "bo@example.org").output
    assert "name:       Bo Ode" in shown and "status:     active" in shown
    assert "keywords:   diffusion" in shown and "exclude:    survey" in shown
    assert "max papers: 7" in shown
    assert "schedule:   daily on mon,fri at 10:30 Asia/Tokyo" in shown
    changed = digest(site, "subscribers", "add", "bo@example.org", "--keyword", "llm")
    assert changed.exit_code == 0, changed.output
    shown = digest(site, "subscribers", "show", "bo@example.org").output
    assert "keywords:   llm" in shown and "name:       Bo Ode" in shown
    assert "exclude:    survey" in shown and "at 10:30 Asia/Tokyo" in shown
    weekly = digest(site, "subscribers", "add", "bo@example.org", "--frequency", "weekly")
    assert weekly.exit_code == 0, weekly.output
    shown = digest(site, "subscribers", "show", "bo@example.org").output
    assert "schedule:   weekly" in shown and "keywords:   llm" in shown  # a new schedule


def test_subscribers_add_on_a_subscriber_of_the_config_says_the_config_wins(site: Path) -> None:
    """No silent revert: the next run writes the config's queries back, so the CLI says so."""
    result = digest(site, "subscribers", "add", "ada@example.org", "--keyword", "llm")
    assert result.exit_code == 0, result.output
    assert "ada@example.org" in result.stderr and "config.toml" in result.stderr
    assert "edit the config" in result.stderr
    other = digest(site, "subscribers", "add", "zed@example.org", "--keyword", "llm")
    assert other.exit_code == 0 and other.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--send-at", "7pm"), "Invalid value for --send-at"),
        (("--send-at", "24:00"), "HH:MM"),
        (("--timezone", "Europe/Nowhere"), "unknown time zone"),
        (("--weekday", "funday"), "expected one of mon"),
        (("--days", "mon,xyz"), "Invalid value for --days"),
        (("--frequency", "hourly"), "'hourly' is not one of"),
    ],
)
def test_bad_schedules_are_refused_naming_the_option(
    site: Path, args: tuple[str, ...], message: str
) -> None:
    result = digest(site, "subscribers", "add", "bo@example.org", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_bad_schedule_in_the_config_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[schedule]\nsend_at = "8am"\n[[subscribers]]\nemail = "a@example.org"\n'
        'timezone = "Moon/Base"\ndays = ["mon", "someday"]\n',
        "utf-8",
    )
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "config", "check"])
    assert result.exit_code == 2
    assert "schedule.send_at" in result.output
    assert "subscribers[0].timezone" in result.output
    assert "subscribers[0].days" in result.output


def test_preview_shows_matches_of_recent_days_and_changes_nothing(site: Path) -> None:
    assert digest(site, "run", "--date", "2026-11-16").exit_code == 0
    assert digest(site, "run", "--date", "2026-11-17").exit_code == 0
    before = (site / "digest.db").read_bytes()
    result = digest(
        site, "preview", "--keywords", "diffusion", "--exclude", "medical", "--days", "2"
    )
    assert result.exit_code == 0, result.output
    assert "2026-11-17: 2 of 3 papers" in result.output
    assert "2511.00005  Quantized Diffusion Transformers  [diffusion]" in result.output
    assert "2026-11-16: 0 of 3 papers" in result.output  # 00001 is shown once, for the 17th
    assert "Medical" not in result.output
    assert (site / "digest.db").read_bytes() == before
    bad = digest(site, "preview", "--keywords", "(diffusion")
    assert bad.exit_code == 2 and "Invalid value for --keywords" in bad.output


def test_status_shows_subscribers_by_state_and_the_next_sends(site: Path) -> None:
    assert digest(site, "run", "--date", "2026-11-16").exit_code == 0
    result = digest(site, "status")
    assert result.exit_code == 0, result.output
    assert "subscribers: active 1, pending 0, paused 0" in result.output
    assert "next send:  1 active subscriber(s) not placed yet" in result.output
