"""Delivery against a real aiosmtpd server that misbehaves on demand, and the file outbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.deliver import FileOutboxSender, Outcome, Outgoing, SmtpSender
from digest.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from digest.message import build_message, make_message_id
from tests.support.smtpd import SmtpServer

FROM = "Paper Digest <digest@example.org>"
LONG_URL = "https://digest.example.org/unsubscribe?token=" + "A1b2C3d4" * 12
Server = Callable[..., SmtpServer]


def outgoing(i: int, to: str | None = None) -> Outgoing:
    address = to or f"reader{i}@example.org"
    message_id = make_message_id(FROM)
    data = build_message(
        sender=FROM,
        to=address,
        to_name=f"Reader Nº{i}",
        subject=f"Trending papers for 22 Nov 2026: {i} new papers",
        text=f"Hello {i}\n",
        html=f"<p>Hello {i}</p>",
        message_id=message_id,
        date=datetime(2026, 11, 22, 7, tzinfo=UTC),
        list_id="Paper Digest <digest.example.org>",
        unsubscribe_url=LONG_URL,
        unsubscribe_mailto="digest@example.org",
    )
    return Outgoing(f"d{i}", "digest@example.org", (address,), data, message_id)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def sender(server: SmtpServer, **options: object) -> SmtpSender:
    settings: dict[str, object] = {
        "security": "none",
        "username": None,
        "password": None,
        "timeout": 2.0,
        "concurrency": 2,
        "max_attempts": 3,
        "backoff": 0.01,
        "sleep": Sleeps(),
    }
    settings.update(options)
    return SmtpSender(server.host, server.port, **settings)  # type: ignore[arg-type]


async def deliver(smtp: SmtpSender, items: list[Outgoing]) -> dict[object, Outcome]:
    outcomes: dict[object, Outcome] = {}

    async def keep(outcome: Outcome) -> None:
        assert outcome.item.key not in outcomes, "one outcome per message"
        outcomes[outcome.item.key] = outcome

    await smtp.deliver(items, keep)
    return outcomes


async def test_many_messages_over_few_connections_byte_exact(smtp_server: Server) -> None:
    server = smtp_server()
    items = [outgoing(i) for i in range(12)]
    outcomes = await deliver(sender(server, concurrency=2), items)
    assert all(o.ok for o in outcomes.values()) and len(outcomes) == 12
    assert len(server.messages) == 12
    assert len(server.sessions) <= 2
    by_rcpt = {m.rcpt_tos[0]: m for m in server.messages}
    for item in items:
        got = by_rcpt[item.recipients[0]]
        assert got.data == item.data  # nothing re-folded or re-encoded on the way
        assert got.mail_from == "digest@example.org"
    header = by_rcpt["reader0@example.org"].header_line("List-Unsubscribe")
    assert LONG_URL.encode() in header and b"=?" not in header


async def test_starttls_and_auth(smtp_server: Server) -> None:
    server = smtp_server(starttls=True, auth=("digest", "s3cret-pw"))
    smtp = sender(
        server,
        security="starttls",
        username="digest",
        password="s3cret-pw",
        tls_context=server.client_tls_context(),
    )
    assert "s3cret-pw" not in repr(smtp)
    outcomes = await deliver(smtp, [outgoing(1), outgoing(2)])
    assert all(o.ok for o in outcomes.values())
    assert all(m.tls and m.auth_user == "digest" for m in server.messages)


async def test_implicit_tls(smtp_server: Server) -> None:
    server = smtp_server(implicit_tls=True)
    smtp = sender(server, security="tls", tls_context=server.client_tls_context())
    outcomes = await deliver(smtp, [outgoing(1)])
    assert outcomes["d1"].ok and server.messages[0].tls


async def test_an_untrusted_certificate_is_refused(smtp_server: Server) -> None:
    server = smtp_server(starttls=True)
    smtp = sender(server, security="starttls")  # the system store does not know the test CA
    with pytest.raises(DeliveryError) as caught:
        await deliver(smtp, [outgoing(1)])
    assert "certificate" in str(caught.value).lower()
    assert server.messages == []


async def test_starttls_required_but_not_offered(smtp_server: Server) -> None:
    server = smtp_server()
    smtp = sender(server, security="starttls", username="digest", password="pw")
    with pytest.raises(DeliveryError, match="STARTTLS"):
        await deliver(smtp, [outgoing(1)])
    assert not any(c.verb == "AUTH" for c in server.commands)
    assert server.messages == []


def test_credentials_without_tls_are_refused_at_once() -> None:
    with pytest.raises(ConfigError, match="in clear"):
        SmtpSender("127.0.0.1", 25, security="none", username="digest", password="pw")


async def test_auth_refused_stops_the_run_without_marking_anyone(smtp_server: Server) -> None:
    server = smtp_server(starttls=True, auth=("digest", "right"))
    smtp = sender(
        server,
        security="starttls",
        username="digest",
        password="wrong-pw",
        tls_context=server.client_tls_context(),
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        await deliver(smtp, [outgoing(1), outgoing(2)])
    assert "535" in str(caught.value) or caught.value.code == 535
    assert "wrong-pw" not in str(caught.value)
    assert server.messages == []


async def test_421_greeting_once_is_retried(smtp_server: Server) -> None:
    server = smtp_server(greeting="421 4.3.2 Too busy", times=1)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1)])
    assert outcomes["d1"].ok and len(server.messages) == 1


async def test_451_on_data_once_is_retried_and_delivered_once(smtp_server: Server) -> None:
    server = smtp_server(data_reply="451 4.3.0 Try again later", times=1)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1)])
    assert outcomes["d1"].ok and outcomes["d1"].attempts == 2
    assert [m.rcpt_tos for m in server.messages] == [("reader1@example.org",)]


async def test_451_always_is_deferred_after_max_attempts(smtp_server: Server) -> None:
    server = smtp_server(data_reply="451 4.3.0 Try again later")
    sleeps = Sleeps()
    outcomes = await deliver(sender(server, concurrency=1, sleep=sleeps), [outgoing(1)])
    outcome = outcomes["d1"]
    assert not outcome.ok and isinstance(outcome.error, TransientDeliveryError)
    assert outcome.attempts == 3 and len(sleeps.delays) == 2
    assert sleeps.delays[1] > sleeps.delays[0]
    assert server.messages == []


async def test_550_for_one_recipient_fails_only_that_one(smtp_server: Server) -> None:
    server = smtp_server(rcpt_replies={"bob@example.org": "550 5.1.1 No such user here"})
    items = [outgoing(1), outgoing(2, "bob@example.org"), outgoing(3)]
    outcomes = await deliver(sender(server), items)
    assert outcomes["d1"].ok and outcomes["d3"].ok
    bob = outcomes["d2"]
    assert not bob.ok and isinstance(bob.error, PermanentDeliveryError)
    assert bob.error.code == 550 and "No such user" in str(bob.error)
    assert {m.rcpt_tos[0] for m in server.messages} == {
        "reader1@example.org",
        "reader3@example.org",
    }


async def test_452_too_many_recipients_is_split(smtp_server: Server) -> None:
    server = smtp_server(max_recipients=1)
    item = outgoing(1)
    item = Outgoing(item.key, item.sender, ("a@example.org", "b@example.org"), item.data, "<x@y>")
    outcomes = await deliver(sender(server, concurrency=1), [item])
    assert outcomes["d1"].ok
    assert sorted(r for m in server.messages for r in m.rcpt_tos) == [
        "a@example.org",
        "b@example.org",
    ]


async def test_a_connection_dropped_mid_data_is_retried(smtp_server: Server) -> None:
    server = smtp_server(drop="mid-data", times=1)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1), outgoing(2)])
    assert all(o.ok for o in outcomes.values())
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [
        "reader1@example.org",
        "reader2@example.org",
    ]


async def test_a_stalling_server_times_out_and_is_deferred(smtp_server: Server) -> None:
    server = smtp_server(stall_on="DATA", stall=3)
    smtp = sender(server, concurrency=1, timeout=0.3, max_attempts=1)
    outcomes = await deliver(smtp, [outgoing(1)])
    outcome = outcomes["d1"]
    assert not outcome.ok and isinstance(outcome.error, TransientDeliveryError)
    assert "0.3 s" in str(outcome.error)


async def test_an_unreachable_server_is_a_transient_run_error(smtp_server: Server) -> None:
    server = smtp_server()
    server.stop()
    with pytest.raises(TransientDeliveryError):
        await deliver(sender(server, concurrency=1, max_attempts=2), [outgoing(1)])


async def test_file_outbox_writes_whole_files(tmp_path: Path) -> None:
    outbox = FileOutboxSender(tmp_path / "outbox")
    items = [outgoing(i) for i in range(3)]
    outcomes = await deliver(outbox, items)  # type: ignore[arg-type]
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 3 and all(o.ok for o in outcomes.values())
    assert {f.read_bytes() for f in files} == {i.data for i in items}
    assert not list((tmp_path / "outbox").glob(".*"))  # no temp files left


async def test_file_outbox_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TransientDeliveryError, match="cannot write"):
        await deliver(FileOutboxSender(blocker / "outbox"), [outgoing(1)])  # type: ignore[arg-type]
