"""Visibility: every run recorded, ``digest status`` telling a quiet day from a broken run,
the admin alerted once when runs keep failing and once when they recover, and no secret in
any log line or error."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest.config import load
from digest.errors import DeliveryError, SourceError, StateError
from digest.models import Subscriber
from digest.run import make_context, run
from digest.store import PlannedDelivery, Store, new_delivery_id
from tests.support.listings import item, write_days
from tests.support.site import digest, outbox, write_config
from tests.support.smtpd import SmtpServer

Server = Callable[..., SmtpServer]
GOOD, BROKEN, EMPTY = "2026-11-16", "2026-11-17", "2026-11-18"
NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)


def setup(tmp_path: Path, db_url: str, mail: str = "", smtp: str = "") -> Path:
    listings = write_days(
        tmp_path / "listings",
        {GOOD: [item("2511.00001", "Diffusion one"), item("2511.00002", "Diffusion two")]},
    )
    (listings / f"{BROKEN}.json").write_text("<html>502 Bad Gateway</html>", "utf-8")
    # EMPTY has no file: the file source takes that as an empty day
    mail = f'outbox_dir = "outbox"\n{mail}'
    return write_config(tmp_path, db_url, listings, mail=mail, more=smtp)


def to(messages: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [m for m in messages if m["To"] == address]


def test_status_tells_a_quiet_day_from_a_failing_fetch_and_alerts_the_admin(
    tmp_path: Path, db_url: str
) -> None:
    config = setup(tmp_path, db_url, 'admin = "ops@example.org"\nalert_after = 2')
    first = digest(config, "status")
    assert first.exit_code == 0, first.output
    assert "last run:   none recorded yet" in first.output

    assert digest(config, "run", "--date", GOOD).exit_code == 0
    ok = digest(config, "status").output
    assert f"for {GOOD}: ok (fetched 2, sent 1, failed 0, deferred 0)" in ok
    assert "listing:    ok, 2 papers" in ok
    assert "deliveries: pending 0, sending 0, failed 0, sent 1" in ok
    assert "suspended:  0" in ok

    assert digest(config, "run", "--date", EMPTY).exit_code == 0
    quiet = digest(config, "status")
    assert quiet.exit_code == 0
    assert f"for {EMPTY}: empty" in quiet.output
    assert "listing:    listing empty (weekend or holiday?)" in quiet.output

    broken = digest(config, "run", "--date", BROKEN)
    assert broken.exit_code == 1 and "error:" in broken.output
    failing = digest(config, "status")
    assert failing.exit_code == 0
    assert f"for {BROKEN}: failed" in failing.output
    assert "listing:    fetch failing since " in failing.output
    assert "(1 failed run(s) in a row)" in failing.output
    assert to(outbox(tmp_path), "ops@example.org") == []  # one failure: no alert yet

    assert digest(config, "run", "--date", BROKEN).exit_code == 1  # the second: alert
    assert digest(config, "run", "--date", BROKEN).exit_code == 1  # the third: no second alert
    status = digest(config, "status").output
    assert "(3 failed run(s) in a row)" in status
    assert "alert:      the admin was told runs are failing" in status
    [alert] = to(outbox(tmp_path), "ops@example.org")
    assert alert["Subject"] == "paper-digest: 2 runs failed in a row"
    body = alert.get_body(("plain",))
    assert body is not None
    assert "failed at the fetch stage" in body.get_content()
    assert "got an HTML or XML page" in body.get_content()

    assert digest(config, "run", "--date", GOOD).exit_code == 0  # works again: one more
    alerts = to(outbox(tmp_path), "ops@example.org")
    assert [a["Subject"] for a in alerts] == [
        "paper-digest: 2 runs failed in a row",
        "paper-digest: runs succeed again",
    ]
    assert "listing:    ok, 2 papers" in digest(config, "status").output
    assert digest(config, "run", "--date", GOOD).exit_code == 0
    assert len(to(outbox(tmp_path), "ops@example.org")) == 2  # recovered: nothing more
    # subscribers never get an alert
    assert all("paper-digest:" not in m["Subject"] for m in to(outbox(tmp_path), "ada@example.org"))


async def test_the_alert_goes_through_smtp_like_the_digests(
    tmp_path: Path, db_url: str, smtp_server: Server
) -> None:
    server = smtp_server()
    smtp = f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"'
    cfg = load(setup(tmp_path, db_url, 'admin = "ops@example.org"\nalert_after = 1', smtp))
    with Store(cfg.database) as store:
        with pytest.raises(SourceError):
            await run(make_context(cfg, store, now=NOW), date.fromisoformat(BROKEN))
        [record] = store.run_log.runs()
        assert (record.outcome, record.stage) == ("failed", "fetch")
        assert record.error and "JSON" in record.error
    [alert] = server.messages
    assert alert.rcpt_tos == ("ops@example.org",)
    assert alert.message["Subject"] == "paper-digest: 1 runs failed in a row"


def test_suspended_subscribers_in_status_and_lists(tmp_path: Path, db_url: str) -> None:
    config = setup(tmp_path, db_url)
    with Store(load(config).database) as store:
        bob = store.members.add_subscriber(Subscriber(email="bob@example.org"))
        assert bob.id is not None
        plan = PlannedDelivery(bob.id, date(2026, 11, 16), ("k",), 1, new_delivery_id(),
                               "<m1@example.org>")  # fmt: skip
        store.outbox.record_pending([plan], NOW)
        assert store.outbox.mark_failed(plan.id, "550 5.1.1 No such user", max_hard_bounces=1)
    status = digest(config, "status")
    assert status.exit_code == 0
    assert "deliveries: pending 0, sending 0, failed 1, sent 0" in status.output
    assert "suspended:  1\n  bob@example.org  suspended (bounced: 1 in a row)" in status.output
    listed = digest(config, "subscribers", "list").output
    assert "bob@example.org\tsuspended (bounced: 1 in a row)\t(everything)" in listed
    shown = digest(config, "subscribers", "show", "bob@example.org").output
    assert "status:     suspended (bounced: 1 in a row)" in shown
    assert "550 5.1.1 No such user" in shown
    # suspended: the next run sends them nothing
    assert digest(config, "run", "--date", GOOD).exit_code == 0
    assert to(outbox(tmp_path), "bob@example.org") == []


# -- secrets ---------------------------------------------------------------------------------

SIGNING_SECRET = "signing-secret-do-not-log-1234567890"
SMTP_PASSWORD = "smtp-password-do-not-log-5678"


def digest_lines(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line paper-digest wrote (the test server's own log is not ours)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("digest"))


async def test_no_secret_in_logs_or_errors(
    tmp_path: Path,
    db_url: str,
    smtp_server: Server,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DIGEST_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", SMTP_PASSWORD)
    server = smtp_server(starttls=True, auth=("digest", SMTP_PASSWORD))
    smtp = (
        f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "starttls"\n'
        'username = "digest"\nverify_tls = false\nmax_attempts = 1'
    )
    cfg = load(setup(tmp_path, db_url, "", smtp))
    with Store(cfg.database) as store:
        report = await run(make_context(cfg, store, now=NOW), date.fromisoformat(GOOD))
        assert report.sent == 1 and server.messages[0].auth_user == "digest"
        # the password is wrong now: the run fails, saying so without the password
        server.stop()
        other = smtp_server(starttls=True, auth=("digest", "the-right-one"))
        smtp = smtp.replace(f"port = {server.port}", f"port = {other.port}")
        cfg = load(setup(tmp_path, db_url, "", smtp))
        store.members.add_subscriber(Subscriber(email="bob@example.org"))
        with pytest.raises(DeliveryError) as caught:
            await run(make_context(cfg, store, now=NOW), date.fromisoformat(GOOD))
        records = store.run_log.runs()
    for secret in (SIGNING_SECRET, SMTP_PASSWORD):
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
        assert secret not in digest_lines(caplog)
        assert all(secret not in (r.error or "") for r in records)
    assert "sent to=ada@example.org message_id=<" in digest_lines(caplog)
    assert records[0].outcome == "failed" and records[0].stage == "deliver"


def test_a_database_password_stays_out_of_errors() -> None:
    with pytest.raises(StateError) as caught:
        Store("postgresql+psycopg://digest:db-password-9876@127.0.0.1:1/digest")
    assert "db-password-9876" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
