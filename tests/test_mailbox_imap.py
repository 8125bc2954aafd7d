"""The bounce mailbox over IMAP, against a real Dovecot started by the tests (skipped, with
the reason, where Dovecot is missing: ``apt-get install dovecot-imapd``; ``.ci/run``
installs it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from digest.errors import MailboxError
from digest.mailbox import PROCESSED, ImapMailbox
from tests.support import bounces as mail
from tests.support.dovecot import PASSWORD, USER, Dovecot, dovecot_problem, free_port
from tests.support.site import digest
from tests.support.smtpd import SmtpServer, client_tls_context
from tests.test_mailbox import (
    BOUNCES,
    DAYS,
    counts,
    dsn_for,
    sent_to,
    subscriber,
    write_config,
)

pytestmark = pytest.mark.skipif(dovecot_problem() is not None, reason=str(dovecot_problem()))


@pytest.fixture(scope="module")
def dovecot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    server = Dovecot(tmp_path_factory.mktemp("dovecot"))
    try:
        server.start()
    except RuntimeError as exc:
        if os.getuid() == 0:
            raise
        pytest.skip(f"Dovecot would not start as a user other than root: {exc}")
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    """The module's Dovecot, its INBOX empty."""
    dovecot_server.empty()
    return dovecot_server


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'digest.db'}"


@pytest.fixture(autouse=True)
def imap_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "m" * 43)
    monkeypatch.setenv("DIGEST_MAILBOX_PASSWORD", PASSWORD)


def imaps(server: Dovecot, host: str = "127.0.0.1", **options: Any) -> ImapMailbox:
    """A reader of ``server`` over TLS as its user, trusting the test certificate."""
    return ImapMailbox(
        host,
        server.imaps_port,
        security="tls",
        username=USER,
        password=PASSWORD,
        tls_context=client_tls_context(),
        **options,
    )


def imap_section(server: Dovecot, security: str = "tls", **extra: Any) -> str:
    port = server.imaps_port if security == "tls" else server.imap_port
    lines = [
        "[mailbox]",
        'kind = "imap"',
        'host = "127.0.0.1"',
        f"port = {port}",
        f'security = "{security}"',
        f'username = "{USER}"',
        "verify_tls = false",
    ]
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in extra.items()]
    return "\n".join(lines).replace('"False"', "false").replace("False", "false")


@pytest.mark.parametrize("security", ["tls", "starttls", "none"])
def test_a_dsn_in_the_imap_mailbox_counts_once_and_is_flagged(
    tmp_path: Path, db_url: str, smtp_server: Any, dovecot: Dovecot, security: str
) -> None:
    """The issue's journey over IMAP: a digest through the real SMTP server, its DSN
    delivered to the IMAP mailbox, `digest mailbox` counts the hard bounce and flags the
    message; the next pass processes nothing; mail that names nothing stays unflagged."""
    server: SmtpServer = smtp_server()
    config = write_config(tmp_path, db_url, server, imap_section(dovecot, security))
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (bob_digest,) = sent_to(server, "bob@example.org")
    dovecot.append(dsn_for(bob_digest))
    dovecot.append(mail.plain_mail(to=BOUNCES))

    first = digest(config, "mailbox")
    assert counts(first)["hard bounces"] == 1 and counts(first)["unmatched"] == 1
    assert f"imap://{USER}@127.0.0.1:" in first.stdout
    assert subscriber(config, "bob@example.org").hard_bounces == 1
    flags = dovecot.keywords()
    assert PROCESSED in flags[0] and "\\Seen" not in flags[0]  # read with BODY.PEEK
    assert flags[1] == ""  # left alone

    again = counts(digest(config, "mailbox"))
    assert again["hard bounces"] == 0 and again["already seen"] == 0 and again["unmatched"] == 1
    assert subscriber(config, "bob@example.org").hard_bounces == 1


def test_with_move_to_processed_mail_is_moved_and_the_rest_stays(
    tmp_path: Path, smtp_server: Any, dovecot: Dovecot
) -> None:
    """For servers that keep no keywords of ours (mailbox.move_to): IMAP MOVE."""
    server: SmtpServer = smtp_server()
    folder = "Processed"
    dovecot.create(folder)
    section = imap_section(dovecot, move_to=folder)
    config = write_config(tmp_path, sqlite(tmp_path), server, section)
    assert digest(config, "run", "--date", DAYS[0]).exit_code == 0
    (bob_digest,) = sent_to(server, "bob@example.org")
    dovecot.append(dsn_for(bob_digest))
    dovecot.append(mail.plain_mail(to=BOUNCES))
    first = counts(digest(config, "mailbox"))
    assert (first["hard bounces"], first["unmatched"]) == (1, 1)
    assert dovecot.keywords() == [""]  # only the stranger's mail is left, untouched
    assert len(dovecot.keywords(folder)) == 1
    again = counts(digest(config, "mailbox"))
    assert (again["hard bounces"], again["already seen"], again["unmatched"]) == (0, 0, 1)
    missing = write_config(
        tmp_path, sqlite(tmp_path), server, imap_section(dovecot, move_to="Nope")
    )
    result = digest(missing, "mailbox")
    assert result.exit_code == 1 and "mailbox.move_to" in result.stderr


def test_without_move_processed_mail_is_copied_then_expunged_or_marked_deleted(
    tmp_path: Path,
) -> None:
    """A server without MOVE: COPY, then the message alone expunged (UIDPLUS), or, without
    UIDPLUS either, left marked \\Deleted, which the next pass skips."""
    for capability, left in (("IMAP4rev1 UIDPLUS", 0), ("IMAP4rev1", 1)):
        with Dovecot(tmp_path / capability.replace(" ", "-"), capability=capability) as server:
            server.create("Processed")
            server.append(mail.arf(mail_from="x@example.net"))
            server.append(mail.plain_mail(to=BOUNCES))
            box = imaps(server, move_to="Processed")
            with box as opened:
                first, _ = opened.letters()
                opened.mark_processed(first)
            with box as opened:
                assert len(list(opened.letters())) == 1  # the stranger's mail only
            flags = server.keywords()
            assert len(flags) == 1 + left and flags[-1] == ""
            if left:
                assert "\\Deleted" in flags[0]
            assert len(server.keywords("Processed")) == 1


def test_the_reader_verifies_the_certificate_and_lists_only_unprocessed_mail(
    dovecot: Dovecot,
) -> None:
    dovecot.append(mail.plain_mail(to=BOUNCES, subject="one"))
    dovecot.append(mail.plain_mail(to=BOUNCES, subject="two"))
    box = imaps(dovecot, "localhost")
    with box as opened:
        first = list(opened.letters())
        assert [b"Subject: one" in x.raw for x in first] == [True, False]
        opened.mark_processed(first[0])
    with box as opened:
        (left,) = opened.letters()
        assert b"Subject: two" in left.raw


def test_an_unset_password_is_a_usage_error_naming_the_variable(
    tmp_path: Path, smtp_server: Any, dovecot_server: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_MAILBOX_PASSWORD")
    section = imap_section(dovecot_server)
    config = write_config(tmp_path, sqlite(tmp_path), smtp_server(), section)
    result = digest(config, "mailbox")
    assert result.exit_code == 2 and "DIGEST_MAILBOX_PASSWORD" in result.stderr


def test_an_untrusted_certificate_or_a_closed_port_exits_1(
    tmp_path: Path, smtp_server: Any, dovecot: Dovecot
) -> None:
    section = imap_section(dovecot).replace("verify_tls = false", "verify_tls = true")
    config = write_config(tmp_path, sqlite(tmp_path), smtp_server(), section)
    result = digest(config, "mailbox")
    assert result.exit_code == 1 and "certificate" in result.stderr
    closed = section.replace(f"port = {dovecot.imaps_port}", f"port = {free_port()}")
    config = write_config(tmp_path, sqlite(tmp_path), smtp_server(), closed)
    result = digest(config, "mailbox")
    assert result.exit_code == 1 and "mailbox.port" in result.stderr


def test_a_missing_folder_is_a_mailbox_error(dovecot: Dovecot) -> None:
    box = imaps(dovecot, folder="Bounces")
    with pytest.raises(MailboxError, match="select Bounces"), box:
        pass


# Last: Dovecot delays logins from an address that just failed one.
def test_a_wrong_password_exits_1_with_a_hint_and_no_traceback(
    tmp_path: Path, smtp_server: Any, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_MAILBOX_PASSWORD", "wrong")
    config = write_config(tmp_path, sqlite(tmp_path), smtp_server(), imap_section(dovecot))
    result = digest(config, "mailbox")
    assert result.exit_code == 1
    assert "mailbox imap://bounces@127.0.0.1" in result.stderr
    assert "mailbox.password_env" in result.stderr and "Traceback" not in result.output
    assert "wrong" not in result.output  # never the password
