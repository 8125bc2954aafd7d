"""The bounce mailbox end to end: digests sent through a real SMTP server carry a VERP
envelope sender and a mailto with a token; bounces, complaints and mailto unsubscribes
dropped into a maildir (or a real Dovecot, tests/test_mailbox_imap.py) become the right
state changes exactly once, with ``digest mailbox`` saying what it did. Real databases
(SQLite, and PostgreSQL where one answers)."""

from __future__ import annotations

import hashlib
import mailbox as stdlib_mailbox
import re
import socket
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from digest.compose import read_token, unsubscribe_token, verp_address
from digest.config import load, parse
from digest.errors import ConfigError, MailboxError
from digest.mailbox import MaildirMailbox
from digest.run import make_context, run
from digest.run.mailbox import MailboxReport
from digest.serve.mailbox import MailboxJob, add_mailbox_job
from digest.store import Store
from tests.support import bounces as mail
from tests.support import site as sites
from tests.support.listings import item, write_days
from tests.support.site import digest
from tests.support.smtpd import Received, SmtpServer

SECRET = "m" * 43
BOUNCES = "bounces@example.org"
DAYS = ("2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19")


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def write_config(
    folder: Path, db_url: str, server: SmtpServer, mailbox: str, *, bounce: str = BOUNCES
) -> Path:
    listings = write_days(
        folder / "listings",
        {day: [item(f"2511.0000{i}", f"Diffusion paper {i}")] for i, day in enumerate(DAYS)},
    )
    return sites.write_config(
        folder,
        db_url,
        listings,
        server=server,
        mail=f'bounce_address = "{bounce}"\nmax_hard_bounces = 3',
        more=mailbox,
        readers=("ada@example.org", "bob@example.org"),
    )


def maildir(folder: Path) -> stdlib_mailbox.Maildir:
    return stdlib_mailbox.Maildir(folder, create=True)


@pytest.fixture
def site(tmp_path: Path, db_url: str, smtp_server: Any) -> tuple[Path, SmtpServer, Path]:
    """A site whose digests go to a real SMTP server and whose mailbox is a maildir."""
    server = smtp_server()
    box = tmp_path / "Maildir"
    maildir(box)
    config = write_config(tmp_path, db_url, server, f'[mailbox]\nkind = "maildir"\npath = "{box}"')
    return config, server, box


def sent_to(server: SmtpServer, address: str) -> list[Received]:
    return [m for m in server.messages if m.rcpt_tos == (address,)]


def dsn_for(message: Received, **fields: Any) -> bytes:
    """The DSN a receiving server sends back for ``message``, to its envelope sender."""
    head = message.data.split(b"\r\n\r\n", 1)[0].decode() + "\n"
    tag = hashlib.sha256(message.data).hexdigest()[:16]
    fields.setdefault("message_id", f"<dsn-{tag}-{fields.get('status', '5.1.1')}@mx.example.net>")
    return mail.dsn(
        to=message.mail_from,
        recipient=message.rcpt_tos[0],
        returned=head,
        headers_only=True,
        **fields,
    )


def subscriber(config: Path, email: str) -> Any:
    cfg = load(config)
    with Store(cfg.database) as store:
        return store.members.subscriber(email)


def history(config: Path, email: str) -> list[Any]:
    cfg = load(config)
    with Store(cfg.database) as store:
        sub = store.members.subscriber(email)
        assert sub is not None and sub.id is not None
        return store.outbox.history(sub.id)


_COUNT = re.compile(
    r"^\s+(hard bounces|soft bounces|complaints|unsubscribes|unmatched|already seen):\s+(\d+)",
    re.M,
)


def counts(result: Result) -> dict[str, int]:
    assert result.exit_code == 0, result.output
    return {name: int(n) for name, n in _COUNT.findall(result.stdout)}


# -- sending ------------------------------------------------------------------------------


def test_digests_go_out_with_a_verp_envelope_sender_and_a_mailto_token(
    site: tuple[Path, SmtpServer, Path],
) -> None:
    config, server, _ = site
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (ada,) = sent_to(server, "ada@example.org")
    (bob,) = sent_to(server, "bob@example.org")
    assert ada.mail_from != bob.mail_from  # each names its own delivery
    for message in (ada, bob):
        local, _, domain = message.mail_from.partition("@")
        assert domain == "example.org" and local.startswith("bounces+")
        ref = read_token(SECRET.encode(), local.split("+", 1)[1])
        assert ref is not None and ref.delivery_id is not None
    sub = subscriber(config, "ada@example.org")
    token = unsubscribe_token(SECRET.encode(), sub.id)
    mailto = f"mailto:{verp_address(BOUNCES, token)}?subject=unsubscribe%20{token}"
    assert f"<{mailto}>" in str(ada.message["List-Unsubscribe"])
    assert ada.message["From"] == "Paper Digest <digest@example.org>"  # From unchanged


def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(
    tmp_path: Path, db_url: str, smtp_server: Any
) -> None:
    server = smtp_server()
    config = write_config(tmp_path, db_url, server, "")
    config.write_text(config.read_text().replace(f'bounce_address = "{BOUNCES}"\n', ""))
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    assert {m.mail_from for m in server.messages} == {"digest@example.org"}


# -- the end-to-end journey ---------------------------------------------------------------


def test_a_dsn_for_a_sent_digest_counts_a_hard_bounce_once(
    site: tuple[Path, SmtpServer, Path],
) -> None:
    """The issue's journey: a digest through the real SMTP server, its DSN dropped into
    the mailbox, `digest mailbox` counts the hard bounce against that subscriber; run
    again: nothing processed twice."""
    config, server, box = site
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (bob_digest,) = sent_to(server, "bob@example.org")
    maildir(box).add(dsn_for(bob_digest))

    first = digest(config, "mailbox")
    assert counts(first) == {
        "hard bounces": 1,
        "soft bounces": 0,
        "complaints": 0,
        "unsubscribes": 0,
        "unmatched": 0,
        "already seen": 0,
    }
    bob = subscriber(config, "bob@example.org")
    assert bob.hard_bounces == 1 and bob.status == "active"
    (record,) = history(config, "bob@example.org")
    assert record.status == "failed" and "5.1.1" in (record.error or "")
    assert subscriber(config, "ada@example.org").hard_bounces == 0
    assert list((box / "new").iterdir()) == []
    (done,) = (box / "cur").iterdir()
    assert done.name.endswith(":2,S")

    again = digest(config, "mailbox")
    assert sum(counts(again).values()) == 0
    assert subscriber(config, "bob@example.org").hard_bounces == 1
    status = digest(config, "status")
    assert status.exit_code == 0, status.output
    assert (
        "mailbox:    last 7 days: hard bounces 1, soft bounces 0, complaints 0, unsubscribes 0"
        in status.stdout
    )


def test_hard_bounces_after_accepted_digests_still_suspend_at_the_limit(
    site: tuple[Path, SmtpServer, Path],
) -> None:
    """Each digest is accepted by the server (which resets the count) and bounces later:
    three in a row still suspend, as three 5xx replies would."""
    config, server, box = site
    for n, day in enumerate(DAYS[:3], start=1):
        assert digest(config, "run", "--date", day).exit_code == 0
        bob_digest = sent_to(server, "bob@example.org")[-1]
        maildir(box).add(dsn_for(bob_digest))
        result = digest(config, "mailbox")
        assert counts(result)["hard bounces"] == 1
        assert subscriber(config, "bob@example.org").hard_bounces == n
    assert "suspended:     bob@example.org" in result.stdout
    bob = subscriber(config, "bob@example.org")
    assert (bob.status, bob.status_reason) == ("suspended", "bounced")
    assert subscriber(config, "ada@example.org").status == "active"
    assert digest(config, "run", "--date", DAYS[3]).exit_code == 0
    assert len(sent_to(server, "bob@example.org")) == 3  # no more digests to bob

    # Reinstated by the operator, the address still bouncing: its failed digests are still
    # the last ones in a row, so the next hard bounce suspends again (README).
    assert digest(config, "subscribers", "add", "bob@example.org").exit_code == 0
    assert subscriber(config, "bob@example.org").hard_bounces == 0
    assert digest(config, "run", "--date", DAYS[3]).exit_code == 0
    maildir(box).add(dsn_for(sent_to(server, "bob@example.org")[-1]))
    assert counts(digest(config, "mailbox"))["hard bounces"] == 1
    bob = subscriber(config, "bob@example.org")
    assert (bob.status, bob.hard_bounces) == ("suspended", 4)


def test_a_soft_bounce_is_counted_and_reported_not_acted_on(
    site: tuple[Path, SmtpServer, Path],
) -> None:
    config, server, box = site
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (bob_digest,) = sent_to(server, "bob@example.org")
    maildir(box).add(dsn_for(bob_digest, action="delayed", status="4.4.7"))
    assert counts(digest(config, "mailbox"))["soft bounces"] == 1
    bob = subscriber(config, "bob@example.org")
    assert (bob.status, bob.hard_bounces) == ("active", 0)
    assert [r.status for r in history(config, "bob@example.org")] == ["sent"]
    assert sum(counts(digest(config, "mailbox")).values()) == 0


def test_a_complaint_unsubscribes_at_once(site: tuple[Path, SmtpServer, Path]) -> None:
    config, server, box = site
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (ada_digest,) = sent_to(server, "ada@example.org")
    head = ada_digest.data.split(b"\r\n\r\n", 1)[0].decode() + "\n\nthe digest\n"
    maildir(box).add(mail.arf(to="fbl@example.org", rcpt_to="redacted@example.net", returned=head))
    result = digest(config, "mailbox")
    assert counts(result)["complaints"] == 1
    assert "unsubscribed:  ada@example.org" in result.stdout
    ada = subscriber(config, "ada@example.org")
    assert (ada.status, ada.status_reason) == ("unsubscribed", "complaint")
    assert digest(config, "run", "--date", DAYS[1]).exit_code == 0
    assert len(sent_to(server, "ada@example.org")) == 1


def test_a_mailto_unsubscribe_needs_the_token_never_only_the_from(
    site: tuple[Path, SmtpServer, Path],
) -> None:
    config, server, box = site
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (ada_digest,) = sent_to(server, "ada@example.org")
    mailto = re.search(
        r"<mailto:([^?>]+)\?subject=([^>]+)>", str(ada_digest.message["List-Unsubscribe"])
    )
    assert mailto is not None
    forged = mail.unsubscribe_request(to=BOUNCES, sender="bob@example.org")
    wrong = mail.unsubscribe_request(
        to=verp_address(BOUNCES, unsubscribe_token(b"not our secret at all, at all.....", 2)),
        sender="bob@example.org",
    )
    real = mail.unsubscribe_request(to=mailto.group(1), sender="someone.else@example.net")
    for raw in (forged, wrong, real):
        maildir(box).add(raw)
    result = digest(config, "mailbox")
    assert counts(result) == {
        "hard bounces": 0,
        "soft bounces": 0,
        "complaints": 0,
        "unsubscribes": 1,
        "unmatched": 2,
        "already seen": 0,
    }
    assert "(left in the mailbox)" in result.stdout
    ada = subscriber(config, "ada@example.org")
    assert (ada.status, ada.status_reason) == ("unsubscribed", "mailto")
    assert subscriber(config, "bob@example.org").status == "active"
    assert len(list((box / "new").iterdir())) == 2  # the two left alone
    again = counts(digest(config, "mailbox"))
    assert again["unmatched"] == 2 and again["unsubscribes"] == 0  # counted, not acted on


def test_a_notification_acted_on_but_not_marked_is_only_marked_next_time(
    site: tuple[Path, SmtpServer, Path],
) -> None:
    """A crash between the store's commit and the mailbox's mark, or the same DSN delivered
    twice: the message is recognised, never counted twice."""
    config, server, box = site
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (bob_digest,) = sent_to(server, "bob@example.org")
    dsn = dsn_for(bob_digest)
    maildir(box).add(dsn)
    assert counts(digest(config, "mailbox"))["hard bounces"] == 1
    maildir(box).add(dsn)  # again, as if its mark had been lost
    assert counts(digest(config, "mailbox")) == {
        "hard bounces": 0,
        "soft bounces": 0,
        "complaints": 0,
        "unsubscribes": 0,
        "unmatched": 0,
        "already seen": 1,
    }
    assert subscriber(config, "bob@example.org").hard_bounces == 1
    assert list((box / "new").iterdir()) == []


def test_a_bounce_found_only_by_message_id_and_one_for_a_digest_already_failed(
    site: tuple[Path, SmtpServer, Path],
) -> None:
    config, server, box = site
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (bob_digest,) = sent_to(server, "bob@example.org")
    head = bob_digest.data.split(b"\r\n\r\n", 1)[0].decode()
    head = re.sub(r"bounces\+\w+@", "elsewhere@", head) + "\n"  # no token left
    maildir(box).add(mail.dsn(to=BOUNCES, returned=head, headers_only=True))
    maildir(box).add(dsn_for(bob_digest, message_id="<second-report@mx.example.net>"))
    result = counts(digest(config, "mailbox"))
    assert result["hard bounces"] == 2  # two reports of one failure...
    assert subscriber(config, "bob@example.org").hard_bounces == 1  # ...count once


# -- configuration and errors -------------------------------------------------------------


def test_mailbox_without_a_mailbox_configured_is_a_usage_error(
    tmp_path: Path, db_url: str, smtp_server: Any
) -> None:
    config = write_config(tmp_path, db_url, smtp_server(), "")
    result = digest(config, "mailbox")
    assert result.exit_code == 2
    assert "mailbox.kind" in result.stderr and "Traceback" not in result.output


def test_a_missing_maildir_exits_1_naming_it(tmp_path: Path, db_url: str, smtp_server: Any) -> None:
    gone = tmp_path / "nowhere"
    config = write_config(
        tmp_path, db_url, smtp_server(), f'[mailbox]\nkind = "maildir"\npath = "{gone}"'
    )
    result = digest(config, "mailbox")
    assert result.exit_code == 1
    assert str(gone) in result.stderr and "not a maildir" in result.stderr
    assert "hint:" in result.stderr


def test_an_imap_server_that_refuses_the_connection_is_named_in_words(
    tmp_path: Path, db_url: str, smtp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    section = '[mailbox]\nkind = "imap"\nhost = "127.0.0.1"\nusername = "b"\n'
    section += f'security = "none"\nport = {port}'
    config = write_config(tmp_path, db_url, smtp_server(), section)
    monkeypatch.setenv("DIGEST_MAILBOX_PASSWORD", "pw")
    result = digest(config, "mailbox")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Connection refused" in result.stderr, result.stderr  # not "111"
    assert "check mailbox.host and mailbox.port" in result.stderr


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        ('[mailbox]\nkind = "imap"', "mailbox.host", "required"),
        ('[mailbox]\nkind = "maildir"', "mailbox.path", "required"),
        ('[mailbox]\nkind = "imap"\nhost = "imap.example.org"\nusername = "b"\nsecurity = "none"',
         "mailbox.security", "in clear"),
        ('[mailbox]\nkind = "pop3"', "mailbox.kind", "expected one of"),
        ('[mailbox]\nfolders = "INBOX"', "mailbox.folders", "unknown key"),
    ],
)  # fmt: skip
def test_mailbox_settings_are_checked(section: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"mail": {"bounce_address": BOUNCES}, **_toml(section)}, base=Path("/tmp"))
    assert key in str(caught.value) and words in str(caught.value)


def test_bounce_address_must_leave_room_for_a_token_and_a_mailbox_needs_one() -> None:
    with pytest.raises(ConfigError, match=r"mail\.bounce_address: the part before @"):
        parse(
            {"mail": {"bounce_address": "a-very-long-bounce-mailbox@example.org"}}, base=Path("/")
        )
    with pytest.raises(ConfigError, match=r"mail\.bounce_address: required with"):
        parse({"mailbox": {"kind": "maildir", "path": "/var/mail/x"}}, base=Path("/"))
    cfg = parse(
        {
            "mail": {"bounce_address": BOUNCES},
            "mailbox": {"kind": "imap", "host": "h", "username": "u"},
        },
        base=Path("/"),
    )
    assert (cfg.mailbox.imap_port, cfg.mailbox.security, cfg.mailbox.folder) == (
        993,
        "tls",
        "INBOX",
    )
    assert cfg.mailbox.every_minutes == 5
    starttls = parse(
        {"mail": {"bounce_address": BOUNCES},
         "mailbox": {"kind": "imap", "host": "h", "username": "u", "security": "starttls"}},
        base=Path("/"),
    )  # fmt: skip
    assert starttls.mailbox.imap_port == 143


def _toml(section: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(section)


# -- digest serve's job -------------------------------------------------------------------


async def test_serve_reads_the_mailbox_every_few_minutes(
    site: tuple[Path, SmtpServer, Path],
) -> None:
    config, server, box = site
    cfg = load(config)
    with Store(cfg.database) as store:
        base = make_context(cfg, store)
        await run(base, date.fromisoformat(DAYS[0]))
        (bob_digest,) = sent_to(server, "bob@example.org")
        maildir(box).add(dsn_for(bob_digest))

        class Scheduler:
            def __init__(self) -> None:
                self.jobs: list[tuple[Any, Any, dict[str, Any]]] = []

            def add_job(self, fn: Any, trigger: Any, **kw: Any) -> None:
                self.jobs.append((fn, trigger, kw))

        scheduler = Scheduler()
        job = add_mailbox_job(scheduler, lambda now: base)
        assert isinstance(job, MailboxJob)
        ((_, trigger, kw),) = scheduler.jobs
        assert kw["id"] == "mailbox" and trigger.interval.total_seconds() == 5 * 60
        report = await job.run(datetime(2026, 11, 16, 9, tzinfo=UTC))
        assert report is not None and report.hard == 1
        assert (await job.run()) == MailboxReport()  # nothing twice
        assert store.members.subscriber("bob@example.org").hard_bounces == 1  # type: ignore[union-attr]


async def test_digest_serve_schedules_the_mailbox_job_only_with_a_mailbox(
    site: tuple[Path, SmtpServer, Path], tmp_path: Path, smtp_server: Any
) -> None:
    from digest.serve import Service

    config, _, _ = site
    bare = write_config(tmp_path / "bare", f"sqlite:///{tmp_path / 'bare.db'}", smtp_server(), "")
    for path, expected in ((config, 5 * 60), (bare, None)):
        cfg = load(path)
        with Store(cfg.database) as store:
            base = make_context(cfg, store)
            service = Service(lambda now, base=base: base)  # type: ignore[misc]
            service.start()
            try:
                job = service.scheduler.get_job("mailbox")  # type: ignore[attr-defined]
                interval = job.trigger.interval.total_seconds() if job else None
                assert interval == expected
                assert (service.mailbox is not None) is (expected is not None)
            finally:
                await service.stop(1)


def test_a_folder_that_is_not_a_maildir_is_a_mailbox_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(MailboxError) as caught, MaildirMailbox(tmp_path / "x"):
        pass
    assert caught.value.mailbox == str(tmp_path / "x")


def test_digest_serve_refuses_to_start_without_the_mailbox_password(
    tmp_path: Path, db_url: str, smtp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for the SMTP password: said at the start (exit 2), not in the log 5 minutes on."""
    import uvicorn

    import digest.serve as serving

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    monkeypatch.setattr(serving, "use_logfmt", lambda level: None)
    monkeypatch.delenv("DIGEST_MAILBOX_PASSWORD", raising=False)
    section = '[mailbox]\nkind = "imap"\nhost = "127.0.0.1"\nusername = "bounces"'
    config = write_config(tmp_path, db_url, smtp_server(), section)
    result = digest(config, "serve")
    assert result.exit_code == 2 and served == [], result.output
    assert "mailbox.password_env" in result.stderr and "DIGEST_MAILBOX_PASSWORD" in result.stderr
    assert "Traceback" not in result.output


def test_mailbox_refuses_a_short_secret_as_run_does(
    site: tuple[Path, SmtpServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tokens were signed with the run's secret: the same rule reads them."""
    config, _, _ = site
    monkeypatch.setenv("DIGEST_SECRET", "short")
    result = digest(config, "mailbox")
    assert result.exit_code == 2 and "DIGEST_SECRET" in result.stderr
