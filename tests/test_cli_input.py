"""Input that cannot hurt the operator or the reader, the CLI side (issue 19): the signing
secret, ``base_url``, an unwritable ``feeds.dir``, terminal control characters, CSV
injection in exports and addresses no message can carry."""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.compose import tokens
from digest.models import Subscriber
from digest.store import Store
from tests.support.site import outbox, write_site
from tests.support.smtpd import SmtpServer

GOOD_SECRET = "a-good-secret-of-forty-characters-0123456"
assert len(GOOD_SECRET) >= 32


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config file over three days of listings (tests/test_cli's site)."""
    return write_site(tmp_path)


def digest(site: Path, *args: str, secret: str | None = GOOD_SECRET) -> Result:
    """``digest --config site/config.toml ARGS`` with ``DIGEST_SECRET`` (None: unset)."""
    return CliRunner().invoke(
        cli, ["--config", str(site / "config.toml"), *args], env={"DIGEST_SECRET": secret}
    )


def unsubscribe_token(message: email.message.EmailMessage) -> str:
    found = re.search(r"/unsubscribe\?token=([^>]+)>", str(message["List-Unsubscribe"]))
    assert found, message["List-Unsubscribe"]
    return found.group(1)


# -- DIGEST_SECRET ---------------------------------------------------------------------------

COMMANDS = {
    "run": ("run", "--date", "2026-11-16"),
    "send": ("send", "--to", "grace@example.org", "--date", "2026-11-16"),
    "serve": ("serve", "--host", "203.0.113.1"),  # a refused secret never gets to bind
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("secret", ["x", "0123456789abcdef", "a" * 31, ""])
def test_run_send_and_serve_refuse_a_short_secret_saying_how_to_make_one(
    site: Path, command: str, secret: str
) -> None:
    result = digest(site, *COMMANDS[command], secret=secret)
    assert result.exit_code == 2, result.output
    assert "DIGEST_SECRET" in result.stderr
    assert "at least 32 characters" in result.stderr
    assert "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'" in result.stderr
    assert "Traceback" not in result.output
    assert outbox(site) == []  # nothing signed with it went out


def test_a_good_secret_signs_the_links_and_the_stored_one_only_when_it_is_unset(
    site: Path,
) -> None:
    assert digest(site, "run", "--date", "2026-11-16").exit_code == 0
    (signed,) = outbox(site)
    token = unsubscribe_token(signed)
    assert tokens.verify(GOOD_SECRET.encode(), "unsubscribe", token)
    with Store(f"sqlite:///{site / 'digest.db'}") as store:
        stored = store.run_log.secret()
    with pytest.raises(tokens.BadToken):
        tokens.verify(stored, "unsubscribe", token)

    # Unset (the demo, a cron job on one machine): the database's own secret.
    again = digest(site, "run", "--date", "2026-11-17", secret=None)
    assert again.exit_code == 0, again.output
    later = {unsubscribe_token(m) for m in outbox(site)} - {token}
    assert len(outbox(site)) == 2 and len(later) == 1
    assert tokens.verify(stored, "unsubscribe", later.pop())


def test_the_demo_works_without_a_secret(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["demo", "--dir", str(tmp_path / "demo")], env={"DIGEST_SECRET": None}
    )
    assert result.exit_code == 0, result.output


# -- base_url --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ftp://digest.example.org", "http:// or https://"),
        ("https://", "a host"),
        ("https:///path", "a host"),
        ('https://digest.example.org/"onmouseover="x', "quote"),
        ("https://digest.example.org/a b", "space"),
        ("https://digest example.org", "space"),
        ("https://digest.example.org/?ref=mail", "query"),
        ("https://digest.example.org/#top", "fragment"),
        ("https://digest.example.org:99999", "port"),
        ("https://user:pw@digest.example.org", "user name"),
        ("https://digest.example.org/\x1b[2J", "control"),
        ("https://digest.example.org/<x>", "<"),
        ("http://[::1", "host"),
        ("https://[digest.example.org]/", "host"),
        ("https://digest.example.org:http", "port"),
    ],
)
def test_config_check_refuses_a_base_url_that_would_break_links(
    site: Path, value: str, expected: str
) -> None:
    text = (site / "config.toml").read_text("utf-8")
    toml_value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\x1b", "\\u001b")
    text = text.replace('"https://digest.example.org"', f'"{toml_value}"', 1)
    (site / "config.toml").write_text(text, "utf-8")
    result = digest(site, "config", "check")
    assert result.exit_code == 2, result.output
    assert "base_url" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert "\x1b" not in result.output


@pytest.mark.parametrize(
    "value",
    [
        "https://digest.example.org",
        "http://localhost:8000/",
        "https://example.org/papers/",
        "http://[::1]:8000",
    ],
)
def test_config_check_accepts_a_plain_base_url(site: Path, value: str) -> None:
    text = (site / "config.toml").read_text("utf-8")
    (site / "config.toml").write_text(
        text.replace('"https://digest.example.org"', f'"{value}"', 1), "utf-8"
    )
    result = digest(site, "config", "check")
    assert result.exit_code == 0, result.output


# -- feeds.dir -------------------------------------------------------------------------------


def unwritable_feeds(site: Path) -> Path:
    """feeds.dir under a plain file: no one can write there, not even root."""
    (site / "blocker").write_text("a file, not a folder\n", "utf-8")
    text = (site / "config.toml").read_text("utf-8")
    (site / "config.toml").write_text(
        text.replace('dir = "public"', 'dir = "blocker/public"', 1), "utf-8"
    )
    return site / "blocker" / "public"


def test_an_unwritable_feeds_dir_is_one_clear_error_and_a_feed_failure(site: Path) -> None:
    folder = unwritable_feeds(site)
    result = digest(site, "run", "--date", "2026-11-16")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot write the feeds in {folder}: Not a directory"]
    assert "hint: feeds.dir must be a folder digest can create and write: make it" in (
        result.stderr
    )
    assert len(outbox(site)) == 1  # the digest went before the feeds failed

    status = digest(site, "status")
    assert status.exit_code == 0, status.output
    (listing,) = [line for line in status.stdout.splitlines() if line.startswith("listing:")]
    assert "feeds failing" in listing and "delivery" not in listing
    assert f"cannot write the feeds in {folder}" in listing

    feed = digest(site, "feed")
    assert feed.exit_code == 1
    assert "Traceback" not in feed.output
    assert f"error: cannot write the feeds in {folder}" in feed.stderr

    checked = digest(site, "config", "check")  # says so before any run
    assert checked.exit_code == 2
    assert f"error: feeds.dir: {folder}: {folder.parent} is a file, not a folder" in checked.stderr


# -- control characters never reach the terminal raw ----------------------------------------

#: What a terminal must never get from a value (the CLI's own line breaks and tabs aside).
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
EVIL = "\x1b]0;owned\x07\x1b[2J\u202etxt.exe\x9b31m\x00"
EVIL_SHOWN = "\\x1b]0;owned\\x07\\x1b[2J\\u202etxt.exe\\x9b31m\\x00"


def assert_safe(result: Result) -> None:
    assert not UNSAFE.findall(result.output), result.output
    assert "Traceback" not in result.output


def test_shown_escapes_controls_and_bidi_and_leaves_text_alone() -> None:
    from digest.cli.shared import shown

    assert shown(EVIL) == EVIL_SHOWN
    text = "Ada Lovelace, 日本語, é, 👩\u200d💻, a\\b"
    assert shown(text) == text
    assert shown("a\tb\nc\u2028") == "a\\x09b\\x0ac\\u2028"


def test_subscribers_list_and_show_escape_what_others_typed(site: Path) -> None:
    with Store(f"sqlite:///{site / 'digest.db'}") as store:  # as an old import left them
        store.members.add_subscriber(
            Subscriber(email="eve@example.org", name=f"Eve{EVIL}", keywords=(f"diffusion{EVIL}",))
        )
    listed = digest(site, "subscribers", "list")
    assert listed.exit_code == 0, listed.output
    assert_safe(listed)
    assert f"eve@example.org\tactive\tdiffusion{EVIL_SHOWN}" in listed.stdout
    shown_one = digest(site, "subscribers", "show", "eve@example.org")
    assert shown_one.exit_code == 0, shown_one.output
    assert_safe(shown_one)
    assert f"name:       Eve{EVIL_SHOWN}" in shown_one.stdout
    assert f"keywords:   diffusion{EVIL_SHOWN}" in shown_one.stdout


def test_preview_escapes_third_party_titles(site: Path) -> None:
    from datetime import date

    from digest.models import Listing, Paper

    paper = Paper(key="2511.00009", title=f"Diffusion {EVIL} Agents", arxiv_id="2511.00009")
    with Store(f"sqlite:///{site / 'digest.db'}") as store:  # stored by an older version
        store.papers.save_listing(Listing(date(2026, 11, 16), (paper,)))
    previewed = digest(site, "preview", "--keywords", "diffusion")
    assert previewed.exit_code == 0, previewed.output
    assert "2511.00009" in previewed.stdout and "Agents" in previewed.stdout
    assert_safe(previewed)
    assert "\\x1b" in previewed.stdout


def test_errors_quoting_a_value_escape_it(site: Path) -> None:
    bad_query = digest(site, "subscribers", "add", "eve@example.org", "--keyword", f"({EVIL}")
    assert bad_query.exit_code == 2
    assert_safe(bad_query)
    bad_address = digest(site, "subscribers", "show", f"eve{EVIL}@example.org")
    assert bad_address.exit_code == 2
    assert_safe(bad_address)
    bad_file = site / "people.csv"
    bad_file.write_text(f"email,name,keywords\nx@example.org,X,({EVIL}\n", "utf-8")
    imported = digest(site, "subscribers", "import", str(bad_file))
    assert imported.exit_code == 1
    assert_safe(imported)
    assert "line 2: keywords:" in imported.stderr


def test_status_escapes_a_recorded_error(site: Path) -> None:
    from datetime import UTC, date, datetime

    with Store(f"sqlite:///{site / 'digest.db'}") as store:
        now = datetime(2026, 11, 16, 7, tzinfo=UTC)
        run_id = store.run_log.start_run(date(2026, 11, 16), now, "host", 1)
        store.run_log.finish_run(run_id, now, "failed", stage="fetch", error=f"bad {EVIL}")
    status = digest(site, "status")
    assert status.exit_code == 0, status.output
    assert_safe(status)
    assert f"bad {EVIL_SHOWN}" in status.stdout


# -- addresses with letters outside ASCII before the @ ----------------------------------------

JOSE = "josé@example.org"


def test_subscribers_add_and_send_refuse_a_non_ascii_local_part(site: Path) -> None:
    for args in (("subscribers", "add", JOSE), ("send", "--to", JOSE, "--date", "2026-11-16")):
        result = digest(site, *args)
        assert result.exit_code == 2, result.output
        assert "letters outside ASCII before the @" in result.stderr
        assert "Traceback" not in result.output
    assert outbox(site) == []
    with Store(f"sqlite:///{site / 'digest.db'}") as store:
        assert store.members.subscriber(JOSE) is None


def test_import_and_config_refuse_a_non_ascii_local_part(site: Path) -> None:
    people = site / "people.csv"
    people.write_text(f"email,name\n{JOSE},José\ngrace@example.org,Grace\n", "utf-8")
    imported = digest(site, "subscribers", "import", str(people))
    assert imported.exit_code == 1, imported.output
    assert "line 2: email:" in imported.stderr
    assert "letters outside ASCII before the @" in imported.stderr
    assert "added 1," in imported.stdout and "rejected 1" in imported.stdout

    text = (site / "config.toml").read_text("utf-8")
    (site / "config.toml").write_text(text.replace("ada@example.org", JOSE), "utf-8")
    checked = digest(site, "config", "check")
    assert checked.exit_code == 2
    assert "subscribers[0].email" in checked.stderr
    assert "letters outside ASCII before the @" in checked.stderr


def smtp_site(site: Path, server: SmtpServer) -> None:
    text = (site / "config.toml").read_text("utf-8")
    smtp = f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n'
    (site / "config.toml").write_text(text.replace("[feeds]", smtp + "\n[feeds]"), "utf-8")


def test_a_stored_non_ascii_address_fails_its_digest_for_good_and_the_run_goes_on(
    site: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server()
    smtp_site(site, server)
    url = f"sqlite:///{site / 'digest.db'}"
    assert digest(site, "subscribers", "list").exit_code == 0  # the database made
    with Store(url) as store:  # as an older version's import left it
        jose = store.members.add_subscriber(Subscriber(email=JOSE, keywords=("diffusion",)))
    first = digest(site, "run", "--date", "2026-11-16")
    assert "Traceback" not in first.output
    assert [m.rcpt_tos for m in server.messages] == [("ada@example.org",)]
    assert f"  {JOSE}: 1 matched, not sent: delivery to {JOSE} failed" in first.stdout
    assert "letters outside ASCII before the @ need SMTPUTF8" in first.stdout
    assert "sent 1, failed 1, deferred 0" in first.stdout
    with Store(url) as store:
        assert store.outbox.delivery_counts() == {"sent": 1, "failed": 1}
        assert jose.id is not None
        (record,) = store.outbox.history(jose.id)
        assert record.status == "failed" and "SMTPUTF8" in (record.error or "")

    # Nothing left to retry: the next run sends what is new, tries josé's new digest once.
    second = digest(site, "run", "--date", "2026-11-17")
    assert "Traceback" not in second.output
    assert "sent 1, failed 1, deferred 0" in second.stdout
    with Store(url) as store:
        assert store.outbox.delivery_counts() == {"sent": 2, "failed": 2}
    status = digest(site, "status")
    assert "deliveries: pending 0, sending 0, failed 2, sent 2" in status.stdout

    # The operator can still look them up and remove them.
    shown_one = digest(site, "subscribers", "show", JOSE)
    assert shown_one.exit_code == 0, shown_one.output
    assert "SMTPUTF8" in shown_one.stdout
    assert digest(site, "subscribers", "remove", JOSE).exit_code == 0


def test_a_pending_digest_to_a_non_ascii_address_fails_for_good_when_resumed(
    site: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    from datetime import UTC, date, datetime

    from digest.store import PlannedDelivery, new_delivery_id

    server = smtp_server()
    smtp_site(site, server)
    url = f"sqlite:///{site / 'digest.db'}"
    assert digest(site, "run", "--date", "2026-11-16").exit_code == 0
    with Store(url) as store:  # an older version recorded it, then failed on it every run
        jose = store.members.add_subscriber(Subscriber(email=JOSE, keywords=("diffusion",)))
        listing = store.papers.listing(date(2026, 11, 16))
        assert jose.id is not None and listing is not None
        plan = PlannedDelivery(
            jose.id, listing.date, (listing.papers[0].key,), 1, new_delivery_id(), "<m@x>"
        )
        store.outbox.record_pending([plan], datetime(2026, 11, 16, 7, tzinfo=UTC))
    again = digest(site, "run", "--date", "2026-11-16")
    assert "Traceback" not in again.output
    assert "resumed 1 digest(s)" in again.stdout
    with Store(url) as store:
        # The resumed digest failed (its paper released, as after a 5xx), and so did the
        # one planned next with that paper: nothing pending, nothing retried.
        assert store.outbox.delivery_counts() == {"sent": 1, "failed": 2}
        records = store.outbox.history(jose.id)
        assert [r.status for r in records] == ["failed", "failed"]
        assert all("SMTPUTF8" in (r.error or "") for r in records)
    assert [m.rcpt_tos for m in server.messages] == [("ada@example.org",)]


def test_log_lines_escape_what_a_server_replied(
    site: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server(rcpt_replies={"ada@example.org": "550 5.1.1 gone\x1b[2J\x07"})
    smtp_site(site, server)
    env = {**os.environ, "DIGEST_SECRET": GOOD_SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(site / "config.toml"), "run",
         "--date", "2026-11-16"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert "refused by the mail server" in done.stderr
    assert "WARNING digest.pipeline: failed to=ada@example.org" in done.stderr
    assert "gone\\x1b[2J\\x07" in done.stderr and "gone\\x1b[2J\\x07" in done.stdout
    assert not UNSAFE.findall(done.stdout + done.stderr)


def test_export_to_a_terminal_escapes_and_to_a_file_keeps_the_data() -> None:
    import io

    from digest.cli.subscribers import _export

    eve = Subscriber(email="eve@example.org", name=f"Eve{EVIL}")
    for screen, expected in ((True, EVIL_SHOWN), (False, EVIL)):
        out = io.BytesIO()
        assert _export(out, [eve], "csv", None, screen=screen) == (1, 0)
        line = out.getvalue().decode().splitlines()[1]
        empty = ",," + ",,,,,," + ",,,"  # keywords..max_papers, abstract, schedule, likes
        assert line == f"eve@example.org,Eve{expected}{empty},,active"
