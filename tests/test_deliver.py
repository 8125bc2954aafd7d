"""Delivery against a real aiosmtpd server that misbehaves on demand, and the file outbox.

Each SMTP test starts its own server (``smtp_server``, tests/support/smtpd.py) with the fault
it is about; backoff sleeps are recorded, not slept, so the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiosmtplib
import pytest

import digest.deliver.pipelining as deliver_module
from digest.compose import build_message, clean_for_smtp, encode_body, make_message_id
from digest.deliver import (
    MAX_BACKOFF,
    DeliveryStats,
    FileOutboxSender,
    Outcome,
    Outgoing,
    Sender,
    SmtpSender,
    backoff_delay,
    outbox_name,
    reply_error,
    stops_run,
)
from digest.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from tests.support.smtpd import SmtpServer

FROM = "Paper Digest <digest@example.org>"
LONG_URL = "https://digest.example.org/unsubscribe?token=" + "A1b2C3d4" * 12
USER, PASSWORD = "digest", "s3cret-Pw!"
Server = Callable[..., SmtpServer]


@pytest.fixture(params=[True, False], ids=["pipelining", "one-at-a-time"])
def smtp_server(
    request: pytest.FixtureRequest, smtp_server: Server
) -> Server:  # every test here against a server that offers PIPELINING and one that does not
    def make(**options: object) -> SmtpServer:
        options.setdefault("pipelining", request.param)
        return smtp_server(**options)

    return make


def outgoing(i: int, to: str | None = None) -> Outgoing:
    address = to or f"reader{i}@example.org"
    message_id = make_message_id(FROM)
    data = build_message(
        sender=FROM,
        to=address,
        to_name=f"Reader Nº{i}",
        subject=f"Trending papers for 22 Nov 2026: {i} new papers",
        text=f"Hello {i}\n.\n..leading dots survive dot-stuffing\n",
        html=f"<p>Hello {i}</p>",
        message_id=message_id,
        date=datetime(2026, 11, 22, 7, tzinfo=UTC),
        list_id="Paper Digest <digest.example.org>",
        unsubscribe_url=LONG_URL,
        unsubscribe_mailto="digest@example.org",
    )
    return Outgoing(f"d{i}", "digest@example.org", (address,), data, message_id)


def header_line(data: bytes, name: str) -> bytes:
    """The raw (possibly folded) header field ``name`` of a message, as bytes."""
    head = data.split(b"\r\n\r\n", 1)[0]
    start = head.lower().index(b"\r\n" + name.lower().encode() + b":") + 2
    end = start
    while True:
        end = head.find(b"\r\n", end + 1)
        if end == -1 or head[end + 2 : end + 3] not in (b" ", b"\t"):
            return head[start:] if end == -1 else head[start:end]


class Sleeps:
    """The sender's ``sleep``: records each backoff instead of waiting."""

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
        "jitter": lambda: 0.5,
    }
    settings.update(options)
    return SmtpSender(server.host, server.port, **settings)  # type: ignore[arg-type]


def tls_sender(server: SmtpServer, security: str, **options: object) -> SmtpSender:
    return sender(server, security=security, tls_context=server.client_tls_context(), **options)


class Outcomes(dict[object, Outcome]):
    """What ``on_outcome`` was given, by item key, and the stats ``deliver`` returned."""

    stats: DeliveryStats | None = None


async def deliver(smtp: Sender, items: list[Outgoing]) -> Outcomes:
    outcomes = Outcomes()

    async def keep(outcome: Outcome) -> None:
        assert outcome.item.key not in outcomes, "one outcome per message"
        outcomes[outcome.item.key] = outcome

    outcomes.stats = await smtp.deliver(items, keep)
    return outcomes


async def deliver_expecting(
    smtp: Sender, items: list[Outgoing], error: type[DeliveryError]
) -> tuple[DeliveryError, Outcomes]:
    """Deliver, expecting the run to stop with ``error``; also the outcomes reported before."""
    outcomes = Outcomes()

    async def keep(outcome: Outcome) -> None:
        outcomes[outcome.item.key] = outcome

    with pytest.raises(error) as caught:
        await smtp.deliver(items, keep)
    return caught.value, outcomes


def verbs(server: SmtpServer) -> list[str]:
    return [c.verb for c in server.commands]


# -- plain delivery -------------------------------------------------------------------------


async def test_many_messages_over_few_connections_byte_exact(smtp_server: Server) -> None:
    server = smtp_server()
    items = [outgoing(i) for i in range(12)]
    outcomes = await deliver(sender(server, concurrency=2), items)
    assert outcomes.stats == DeliveryStats(sent=12, failed=0, deferred=0)
    assert all(o.ok and o.error is None and o.attempts == 1 for o in outcomes.values())
    assert len(outcomes) == len(server.messages) == 12
    assert server.connections <= 2
    by_rcpt = {m.rcpt_tos[0]: m for m in server.messages}
    for item in items:
        got = by_rcpt[item.recipients[0]]
        assert got.data == item.data  # nothing re-folded, re-encoded or dot-stuffed wrongly
        assert got.mail_from == "digest@example.org" and not got.tls
    # The long List-Unsubscribe header arrives exactly as build_message folded it.
    sent = header_line(items[0].data, "List-Unsubscribe")
    assert b"\r\n " in sent and LONG_URL.encode() in sent
    assert by_rcpt["reader0@example.org"].header_line("List-Unsubscribe") == sent
    assert outcomes["d0"].reply is not None and "OK" in outcomes["d0"].reply


async def test_commands_are_pipelined_when_the_server_offers_it(smtp_server: Server) -> None:
    for offered in (True, False):
        server = smtp_server(pipelining=offered, max_recipients=None)
        item = outgoing(1)
        two = Outgoing("d2", item.sender, ("ada@example.org", "bo@example.org"), item.data, "<m2>")
        outcomes = await deliver(sender(server, concurrency=1), [item, two])
        assert all(o.ok for o in outcomes.values())
        assert [m.rcpt_tos for m in server.messages] == [(item.recipients[0],), two.recipients]
        assert server.messages[0].data == item.data
        # Pipelined, MAIL and each RCPT were read with the next command already waiting.
        queued = [c.queued for c in server.commands if c.verb in ("MAIL", "RCPT")]
        assert queued == [offered] * 5
        assert verbs(server)[-1] == "QUIT"  # the library's protocol back for the goodbye


class _Transport(asyncio.Transport):
    """Records writes; closing ends the connection as a socket's would."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


class _Inner(asyncio.Protocol):
    def __init__(self) -> None:
        self.lost: list[Exception | None] = []

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


async def test_the_pipeline_pairs_replies_with_commands_however_they_arrive() -> None:
    transport, inner = _Transport(), _Inner()
    pipe = deliver_module._Pipeline(inner, transport)
    pipe.data_received(b"421 4.3.2 unsolicited, before any command\r\n")
    pipe.write(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<c@d.org>\r\nDATA\r\n", 3)
    pipe.data_received(b"250 2.1.0 O")  # a reply cut anywhere, several in one piece
    pipe.data_received(b"k\r\n250-2.1.5 first line\r\n250 2.1.5 last\r\n35")
    pipe.data_received(b"4 go ahead\n")
    replies = [await pipe.reply() for _ in range(3)]
    assert [(r.code, r.message) for r in replies] == [
        (250, "2.1.0 Ok"),
        (250, "2.1.5 first line\n2.1.5 last"),
        (354, "go ahead"),
    ]
    pipe.data_received(b"250 late and unasked\r\n")  # nothing written asks for it
    pipe.write(b"RSET\r\n", 1)
    waiting = asyncio.ensure_future(pipe.reply())
    await asyncio.sleep(0)
    assert not waiting.done()
    pipe.data_received(b"250 2.0.0 reset\r\n")
    assert (await waiting).message == "2.0.0 reset"


async def test_a_pipeline_fails_every_read_once_the_connection_ends() -> None:
    transport, inner = _Transport(), _Inner()
    pipe = deliver_module._Pipeline(inner, transport)
    deliver_module._PIPES[inner] = pipe
    pipe.write(b"MAIL FROM:<a@b.org>\r\n", 1)
    waiting = asyncio.ensure_future(pipe.reply())
    await asyncio.sleep(0)
    lost = ConnectionResetError("reset by peer")
    pipe.connection_lost(lost)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await waiting
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await pipe.reply()  # and every later read
    assert inner.lost == [lost] and inner not in deliver_module._PIPES
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        pipe.write(b"RSET\r\n", 1)


async def test_a_malformed_reply_fails_the_pipeline_and_closes_it() -> None:
    transport, inner = _Transport(), _Inner()
    pipe = deliver_module._Pipeline(inner, transport)
    pipe.write(b"MAIL FROM:<a@b.org>\r\n", 1)
    pipe.data_received(b"hello there\r\n")
    with pytest.raises(aiosmtplib.SMTPResponseException, match="malformed reply"):
        await pipe.reply()
    assert transport.closing


async def test_pipelines_end_with_their_connections(smtp_server: Server) -> None:
    server = smtp_server(pipelining=True)
    await deliver(
        sender(server, concurrency=3, max_per_connection=2), [outgoing(i) for i in range(7)]
    )
    assert len(server.messages) == 7 and server.connections >= 4
    assert len(deliver_module._PIPES) == 0


async def test_a_pipelined_refusal_is_followed_by_rset_and_the_next_message(
    smtp_server: Server,
) -> None:
    server = smtp_server(pipelining=True, mail_reply="452 4.3.1 Out of memory", times=1)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1), outgoing(2)])
    assert all(o.ok for o in outcomes.values())
    assert outcomes["d1"].attempts == 2
    assert verbs(server)[:5] == ["EHLO", "MAIL", "RCPT", "DATA", "RSET"]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_connections_are_bounded_by_concurrency(
    smtp_server: Server, concurrency: int
) -> None:
    server = smtp_server()
    outcomes = await deliver(
        sender(server, concurrency=concurrency), [outgoing(i) for i in range(10)]
    )
    assert outcomes.stats == DeliveryStats(sent=10)
    assert 1 <= server.connections <= concurrency
    assert verbs(server).count("EHLO") == server.connections  # one session each, reused


async def test_a_connection_carries_at_most_max_per_connection(smtp_server: Server) -> None:
    server = smtp_server()
    smtp = sender(server, concurrency=1, max_per_connection=2)
    outcomes = await deliver(smtp, [outgoing(i) for i in range(5)])
    assert outcomes.stats == DeliveryStats(sent=5)
    assert server.connections == 3 and verbs(server).count("QUIT") == 3


async def test_an_outcome_comes_only_after_the_server_has_the_message(
    smtp_server: Server,
) -> None:
    server = smtp_server()
    seen: list[bool] = []

    async def check(outcome: Outcome) -> None:
        seen.append(outcome.item.data in {m.data for m in server.messages})

    await sender(server).deliver([outgoing(i) for i in range(4)], check)
    assert seen == [True] * 4


async def test_items_may_come_from_an_async_iterator(smtp_server: Server) -> None:
    server = smtp_server()

    async def produce() -> AsyncIterator[Outgoing]:
        for i in range(3):
            yield outgoing(i)

    stats = await sender(server).deliver(produce(), _ignore)
    assert stats == DeliveryStats(sent=3) and len(server.messages) == 3


async def _ignore(outcome: Outcome) -> None:
    pass


async def test_nothing_to_send_opens_no_connection(smtp_server: Server) -> None:
    server = smtp_server()
    outcomes = await deliver(sender(server), [])
    assert outcomes.stats == DeliveryStats() and server.connections == 0


# -- TLS and authentication -----------------------------------------------------------------


async def test_starttls(smtp_server: Server) -> None:
    server = smtp_server(starttls=True)
    outcomes = await deliver(tls_sender(server, "starttls"), [outgoing(1), outgoing(2)])
    assert outcomes.stats == DeliveryStats(sent=2)
    assert all(m.tls for m in server.messages)
    assert all(c.tls for c in server.commands if c.verb == "MAIL")
    first = [c.verb for c in server.commands if c.session == 1]
    assert first[:3] == ["EHLO", "STARTTLS", "EHLO"]  # RFC 3207 §4.2: EHLO again after TLS


async def test_implicit_tls(smtp_server: Server) -> None:
    server = smtp_server(implicit_tls=True)
    outcomes = await deliver(tls_sender(server, "tls"), [outgoing(1)])
    assert outcomes["d1"].ok and server.messages[0].tls
    assert "STARTTLS" not in verbs(server)


async def test_auth_over_starttls(smtp_server: Server) -> None:
    server = smtp_server(starttls=True, auth=(USER, PASSWORD))
    smtp = tls_sender(server, "starttls", username=USER, password=PASSWORD)
    outcomes = await deliver(smtp, [outgoing(1), outgoing(2)])
    assert outcomes.stats == DeliveryStats(sent=2)
    assert all(m.tls and m.auth_user == USER for m in server.messages)
    auth = [c for c in server.commands if c.verb == "AUTH"]
    assert auth and all(c.tls for c in auth)  # the password never crossed in clear
    assert server.auth_attempts == [(USER, True)] * server.connections


async def test_auth_over_implicit_tls(smtp_server: Server) -> None:
    server = smtp_server(implicit_tls=True, auth=(USER, PASSWORD))
    smtp = tls_sender(server, "tls", username=USER, password=PASSWORD, concurrency=1)
    outcomes = await deliver(smtp, [outgoing(1)])
    assert outcomes["d1"].ok and server.messages[0].auth_user == USER


async def test_auth_refused_stops_the_run_and_sends_nothing(
    smtp_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = smtp_server(starttls=True, auth=(USER, "right"))
    smtp = tls_sender(server, "starttls", username=USER, password=PASSWORD)
    error, outcomes = await deliver_expecting(
        smtp, [outgoing(1), outgoing(2)], PermanentDeliveryError
    )
    assert error.code == 535 and "authentication as 'digest' failed" in str(error)
    assert error.hint and "smtp.username" in error.hint
    assert outcomes == {}  # nobody marked failed for the operator's mistake: all stay pending
    assert server.messages == [] and "MAIL" not in verbs(server)
    assert server.auth_attempts and not any(ok for _, ok in server.auth_attempts)
    _assert_no_password(PASSWORD, str(error), repr(error), error.hint, repr(smtp))
    _assert_no_password(PASSWORD, *_own_log_lines(caplog))


async def test_the_password_stays_out_of_logs_on_success(
    smtp_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = smtp_server(starttls=True, auth=(USER, PASSWORD), data_reply="451 4.3.0 Later")
    smtp = tls_sender(server, "starttls", username=USER, password=PASSWORD)
    outcomes = await deliver(smtp, [outgoing(1)])
    assert outcomes.stats == DeliveryStats(deferred=1)
    assert _own_log_lines(caplog)  # the retries were logged...
    _assert_no_password(
        PASSWORD, *_own_log_lines(caplog), repr(smtp), repr(list(outcomes.values()))
    )


def test_a_reply_echoing_the_password_is_redacted() -> None:
    smtp = SmtpSender("mx.example.org", 587, security="starttls", username=USER, password=PASSWORD)
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    redacted = smtp._redact(f"5.7.8 bad {PASSWORD} or {plain}")
    _assert_no_password(PASSWORD, redacted)
    assert "5.7.8 bad" in redacted


def _own_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log lines of the client side (the test server's own debug log is its business)."""
    return [r.getMessage() for r in caplog.records if r.name.startswith(("digest", "aiosmtplib"))]


def _assert_no_password(password: str, *texts: str | None) -> None:
    forms = [password, base64.b64encode(password.encode()).decode()]
    forms.append(base64.b64encode(f"\0{USER}\0{password}".encode()).decode())
    for text in texts:
        assert text is not None
        for form in forms:
            assert form not in text


@pytest.mark.parametrize(
    ("username", "password"), [(USER, PASSWORD), (USER, None), (None, PASSWORD)]
)
def test_credentials_without_tls_are_refused_at_construction(
    username: str | None, password: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        SmtpSender("127.0.0.1", 25, security="none", username=username, password=password)
    assert "smtp." in str(caught.value)
    assert PASSWORD not in str(caught.value)
    if username:
        assert "in clear" in str(caught.value) and "starttls" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"security": "ssl"}, "smtp.security"),
        ({"concurrency": 0}, "smtp.concurrency"),
        ({"max_attempts": 0}, "smtp.max_attempts"),
        ({"timeout": 0}, "smtp.timeout"),
        ({"backoff": -1}, "smtp.backoff"),
    ],
)
def test_unusable_settings_are_refused_at_construction(
    options: dict[str, object], key: str
) -> None:
    settings: dict[str, object] = {"security": "none", "username": None, "password": None}
    settings.update(options)
    with pytest.raises(ConfigError) as caught:
        SmtpSender("127.0.0.1", 25, **settings)  # type: ignore[arg-type]
    assert [p.key for p in caught.value.problems] == [key]


@pytest.mark.parametrize("credentials", [True, False])
async def test_starttls_required_but_not_offered(smtp_server: Server, credentials: bool) -> None:
    # The server offers AUTH in clear: aiosmtplib's opportunistic mode would log in there.
    server = smtp_server(auth=(USER, PASSWORD), auth_require_tls=False)
    login = {"username": USER, "password": PASSWORD} if credentials else {}
    smtp = sender(server, security="starttls", **login)
    error, outcomes = await deliver_expecting(smtp, [outgoing(1)], PermanentDeliveryError)
    assert "does not offer STARTTLS" in str(error) and error.hint
    assert outcomes == {} and server.messages == []
    assert "AUTH" not in verbs(server) and server.auth_attempts == []
    assert server.connections == 1  # permanent: not retried


@pytest.mark.parametrize(
    ("security", "option"), [("starttls", "starttls"), ("tls", "implicit_tls")]
)
async def test_an_untrusted_certificate_is_refused(
    smtp_server: Server, security: str, option: str
) -> None:
    server = smtp_server(**{option: True, "auth": (USER, PASSWORD)})
    # No tls_context: the system store does not know the test CA, so verification fails.
    smtp = sender(server, security=security, username=USER, password=PASSWORD)
    error, outcomes = await deliver_expecting(smtp, [outgoing(1)], PermanentDeliveryError)
    assert "TLS certificate verification failed" in str(error)
    assert error.hint and "certificate" in error.hint
    assert outcomes == {} and server.messages == []
    assert "AUTH" not in verbs(server) and server.auth_attempts == []


# -- the server refuses ---------------------------------------------------------------------


async def test_550_for_one_recipient_fails_only_that_one(smtp_server: Server) -> None:
    server = smtp_server(rcpt_replies={"bob@example.org": "550 5.1.1 No such user here"})
    items = [outgoing(1), outgoing(2, "bob@example.org"), outgoing(3)]
    outcomes = await deliver(sender(server), items)
    assert outcomes.stats == DeliveryStats(sent=2, failed=1, deferred=0)
    assert outcomes["d1"].ok and outcomes["d3"].ok
    bob = outcomes["d2"]
    assert not bob.ok and isinstance(bob.error, PermanentDeliveryError)
    assert bob.error.code == 550 and bob.error.recipient == "bob@example.org"
    assert bob.error.reply == bob.reply == "5.1.1 No such user here"
    assert "No such user here" in str(bob.error) and bob.attempts == 1
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [
        "reader1@example.org",
        "reader3@example.org",
    ]


async def test_552_message_too_big_fails_that_message_only(smtp_server: Server) -> None:
    server = smtp_server(data_reply="552 5.3.4 Message too big", times=1)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1), outgoing(2)])
    assert outcomes.stats == DeliveryStats(sent=1, failed=1)
    assert outcomes["d1"].error is not None and outcomes["d1"].error.code == 552
    assert outcomes["d2"].ok and server.connections == 1  # the session went on


async def test_a_refused_sender_address_stops_the_run(smtp_server: Server) -> None:
    server = smtp_server(mail_reply="550 5.7.1 Sender not allowed")
    error, outcomes = await deliver_expecting(
        sender(server), [outgoing(1), outgoing(2)], PermanentDeliveryError
    )
    assert error.code == 550 and "refuses the sender" in str(error)
    assert outcomes == {} and server.messages == []


async def test_authentication_required_stops_the_run(smtp_server: Server) -> None:
    server = smtp_server(rcpt_replies={"reader1@example.org": "530 5.7.0 Authentication required"})
    error, outcomes = await deliver_expecting(
        sender(server, concurrency=1), [outgoing(1)], PermanentDeliveryError
    )
    assert error.code == 530 and "requires authentication" in str(error)
    assert outcomes == {}


async def test_a_554_greeting_stops_the_run_at_once(smtp_server: Server) -> None:
    server = smtp_server(greeting="554 5.3.2 No service")
    error, outcomes = await deliver_expecting(
        sender(server, concurrency=1), [outgoing(1)], PermanentDeliveryError
    )
    assert error.code == 554 and outcomes == {} and server.connections == 1


async def test_an_address_that_cannot_be_sent_fails_that_message(smtp_server: Server) -> None:
    server = smtp_server()
    bad = outgoing(2)
    bad = Outgoing(bad.key, bad.sender, ("a b@example.org",), bad.data, bad.message_id)
    empty = Outgoing("d3", bad.sender, (), bad.data, bad.message_id)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1), bad, empty])
    assert outcomes.stats == DeliveryStats(sent=1, failed=2)
    assert isinstance(outcomes["d2"].error, PermanentDeliveryError)
    assert isinstance(outcomes["d3"].error, PermanentDeliveryError)
    assert [m.rcpt_tos for m in server.messages] == [("reader1@example.org",)]


# -- transient failures ---------------------------------------------------------------------


async def test_421_greeting_once_is_retried(smtp_server: Server) -> None:
    server = smtp_server(greeting="421 4.3.2 Too busy", times=1)
    sleeps = Sleeps()
    outcomes = await deliver(sender(server, concurrency=1, sleep=sleeps), [outgoing(1)])
    assert outcomes["d1"].ok and len(server.messages) == 1
    assert server.connections == 2 and sleeps.delays == [backoff_delay(1, 0.01, 0.5)]


async def test_421_greeting_always_defers_and_stops_the_run(smtp_server: Server) -> None:
    server = smtp_server(greeting="421 4.3.2 Too busy")
    error, outcomes = await deliver_expecting(
        sender(server, concurrency=1), [outgoing(1), outgoing(2)], TransientDeliveryError
    )
    assert error.code == 421 and server.connections == 3  # max_attempts connections
    # The message the worker held is deferred; the one still queued has no outcome.
    assert list(outcomes) == ["d1"] and not outcomes["d1"].ok
    assert isinstance(outcomes["d1"].error, TransientDeliveryError)


async def test_451_on_data_once_is_retried_and_delivered_once(smtp_server: Server) -> None:
    server = smtp_server(data_reply="451 4.3.0 Try again later", times=1)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1)])
    assert outcomes["d1"].ok and outcomes["d1"].attempts == 2
    assert outcomes.stats == DeliveryStats(sent=1)
    assert [m.rcpt_tos for m in server.messages] == [("reader1@example.org",)]


async def test_451_always_is_deferred_after_max_attempts(smtp_server: Server) -> None:
    server = smtp_server(data_reply="451 4.3.0 Try again later")
    sleeps = Sleeps()
    smtp = sender(server, concurrency=1, sleep=sleeps, max_attempts=4, jitter=lambda: 0.0)
    outcomes = await deliver(smtp, [outgoing(1), outgoing(2)])
    assert outcomes.stats == DeliveryStats(sent=0, failed=0, deferred=2)
    outcome = outcomes["d1"]
    assert not outcome.ok and isinstance(outcome.error, TransientDeliveryError)
    assert outcome.error.code == 451 and outcome.reply == "4.3.0 Try again later"
    assert outcome.attempts == 4 and verbs(server).count("DATA") == 8
    assert sleeps.delays[:3] == [0.005, 0.01, 0.02]  # exponential, jitter 0 → lower half
    assert server.messages == []


async def test_452_too_many_recipients_is_split(smtp_server: Server) -> None:
    server = smtp_server(max_recipients=1)
    item = outgoing(1)
    rcpts = ("a@example.org", "b@example.org", "c@example.org")
    item = Outgoing(item.key, item.sender, rcpts, item.data, item.message_id)
    sleeps = Sleeps()
    outcomes = await deliver(sender(server, concurrency=1, sleep=sleeps), [item])
    assert outcomes["d1"].ok and outcomes["d1"].attempts == 3
    assert [m.rcpt_tos for m in server.messages] == [(r,) for r in rcpts]  # each exactly once
    assert sleeps.delays == [] and server.connections == 1  # at once, same connection


async def test_a_connection_dropped_mid_data_is_retried(smtp_server: Server) -> None:
    server = smtp_server(drop="mid-data", times=1)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1), outgoing(2)])
    assert outcomes.stats == DeliveryStats(sent=2)
    assert outcomes["d1"].attempts == 2 and server.connections == 2
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [
        "reader1@example.org",
        "reader2@example.org",
    ]


async def test_a_drop_after_the_data_is_retried_at_the_risk_of_a_duplicate(
    smtp_server: Server,
) -> None:
    # The server took the message but never said so: the client cannot tell (see deliver.py).
    server = smtp_server(drop="before-reply", times=1)
    outcomes = await deliver(sender(server, concurrency=1), [outgoing(1)])
    assert outcomes["d1"].ok and outcomes["d1"].attempts == 2
    assert [m.rcpt_tos for m in server.messages] == [("reader1@example.org",)] * 2


async def test_a_stalling_server_times_out_and_is_deferred(smtp_server: Server) -> None:
    server = smtp_server(stall_on="DATA", stall=3)
    smtp = sender(server, concurrency=1, timeout=0.5, max_attempts=1)
    outcomes = await deliver(smtp, [outgoing(1)])
    assert outcomes.stats == DeliveryStats(deferred=1)
    outcome = outcomes["d1"]
    assert not outcome.ok and isinstance(outcome.error, TransientDeliveryError)
    assert "timed out" in str(outcome.error) and "0.5 s" in str(outcome.error)


async def test_a_server_that_never_greets_is_a_transient_run_error(smtp_server: Server) -> None:
    server = smtp_server(stall_on="greeting", stall=3)
    smtp = sender(server, concurrency=1, timeout=0.3, max_attempts=1)
    error, outcomes = await deliver_expecting(smtp, [outgoing(1)], TransientDeliveryError)
    assert "timed out" in str(error) and outcomes["d1"].error is error
    assert error.hint is not None and "smtp.timeout" in error.hint


async def test_an_unreachable_server_is_a_transient_run_error(smtp_server: Server) -> None:
    server = smtp_server()
    server.stop()
    error, _ = await deliver_expecting(
        sender(server, concurrency=1, max_attempts=2), [outgoing(1)], TransientDeliveryError
    )
    assert "cannot connect" in str(error) and error.recipient == f"{server.host}:{server.port}"
    # what the CLI prints under the error: where to look
    assert error.hint is not None and "smtp.host and smtp.port" in error.hint


# -- policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "jitter", "delay"),
    [(1, 0.0, 0.5), (1, 0.999, 0.9995), (2, 0.0, 1.0), (3, 0.5, 3.0), (30, 0.0, MAX_BACKOFF / 2)],
)
def test_backoff_delay(attempt: int, jitter: float, delay: float) -> None:
    assert backoff_delay(attempt, 1.0, jitter) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("stage", "code", "stops"),
    [
        ("mail", 550, True),
        ("mail", 552, False),
        ("mail", 451, False),
        ("rcpt", 550, False),
        ("rcpt", 530, True),
        ("data", 554, False),
        ("data", 535, True),
    ],
)
def test_stops_run(stage: str, code: int, stops: bool) -> None:
    assert stops_run(stage, code) is stops  # type: ignore[arg-type]


def test_reply_error_is_permanent_for_5xx_only() -> None:
    assert not reply_error("a@b.c", 550, "no", "why").transient
    assert reply_error("a@b.c", 451, "later", "why").transient
    assert reply_error("a@b.c", 421, "bye", "why").code == 421


def test_repr_shows_no_password() -> None:
    smtp = SmtpSender("mx.example.org", 465, security="tls", username=USER, password=PASSWORD)
    assert PASSWORD not in repr(smtp) and "mx.example.org:465" in repr(smtp)


# -- file outbox ----------------------------------------------------------------------------


async def test_file_outbox_writes_whole_files(tmp_path: Path) -> None:
    outbox = FileOutboxSender(tmp_path / "outbox")
    items = [outgoing(i) for i in range(3)]
    outcomes = await deliver(outbox, items)
    assert outcomes.stats == DeliveryStats(sent=3)
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 3 and all(o.ok for o in outcomes.values())
    assert [f.read_bytes() for f in files] == [i.data for i in items]  # sorted = written
    assert {o.reply for o in outcomes.values()} == {str(f) for f in files}
    assert sorted((tmp_path / "outbox").iterdir()) == files  # no temp file left behind


async def test_file_outbox_names_are_unique_and_sorted_even_with_a_frozen_clock(
    tmp_path: Path,
) -> None:
    frozen = datetime(2026, 11, 22, 7, tzinfo=UTC)
    item = outgoing(1)
    twice = [item, Outgoing("again", item.sender, item.recipients, b"second\r\n", item.message_id)]
    await deliver(FileOutboxSender(tmp_path, now=lambda: frozen), [*twice, outgoing(2)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0] == outbox_name(frozen, item.recipients[0])
    assert (tmp_path / names[1]).read_bytes() == b"second\r\n"
    # A second sender (the next run) with the same clock does not overwrite them either.
    await deliver(FileOutboxSender(tmp_path, now=lambda: frozen), [item])
    assert len(list(tmp_path.iterdir())) == 4


def test_outbox_name_shows_the_recipient_and_the_listing_date() -> None:
    when = datetime(2026, 12, 7, 7, 0, tzinfo=UTC) + timedelta(microseconds=123)
    name = outbox_name(when, "ada@example.org", date(2026, 12, 7))
    assert name == "20261207T070000000123Z_2026-12-07_ada@example.org.eml"
    # Without a listing date (a confirmation, an alert): the time and the recipient.
    assert outbox_name(when, "ada@example.org") == "20261207T070000000123Z_ada@example.org.eml"


@pytest.mark.parametrize("recipient", [
    "../../etc/passwd", 'a<b>:"c"|?*\\@example.org', "x\x00y\r\n@example.org",
    "..@example.org.", "", "été@exämple.org", "a" * 300 + "@example.org",
])  # fmt: skip
def test_outbox_names_are_safe_on_every_filesystem(recipient: str) -> None:
    when = datetime(2026, 12, 7, 7, tzinfo=UTC)
    name = outbox_name(when, recipient, date(2026, 12, 7))
    assert re.fullmatch(
        r"20261207T070000000000Z_2026-12-07_[A-Za-z0-9@+-][A-Za-z0-9._@+-]*\.eml", name
    )
    assert len(name) <= 150


async def test_the_outbox_names_each_digest_after_its_reader_and_listing_date(
    tmp_path: Path,
) -> None:
    frozen = datetime(2026, 12, 7, 7, tzinfo=UTC)
    item = replace(outgoing(1), recipients=("ada@example.org",), day=date(2026, 12, 4))
    await deliver(FileOutboxSender(tmp_path, now=lambda: frozen), [item])
    assert [p.name for p in tmp_path.glob("*ada@example.org.eml")] == [
        "20261207T070000000000Z_2026-12-04_ada@example.org.eml"
    ]


async def test_file_outbox_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    error, outcomes = await deliver_expecting(
        FileOutboxSender(blocker / "outbox"), [outgoing(1)], TransientDeliveryError
    )
    assert "cannot write" in str(error) and outcomes == {}


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"A: b\r\n\r\nline\r\n", b"A: b\r\n\r\nline\r\n.\r\n"),
        (b"A: b\r\n\r\n.dot\r\n..two\r\n", b"A: b\r\n\r\n..dot\r\n...two\r\n.\r\n"),
        (b".first\r\nx", b"..first\r\nx\r\n.\r\n"),
        (b"A: b\r\n\r\n.\r\n", b"A: b\r\n\r\n..\r\n.\r\n"),  # a lone dot is not the end
        (b"A: b\n\nbare LF\n", None),
        (b"A: b\r\n\r\nlone\rCR\r\n", None),
    ],
)
def test_messages_we_build_are_dot_stuffed_without_the_library(
    message: bytes, wire: bytes | None
) -> None:
    from digest.deliver import wire_data

    assert wire_data(message) == wire


async def test_a_clean_message_goes_as_it_is(smtp_server: Server) -> None:
    """A message whose bodies came from our encoder (no line starts with ".") is sent
    without the dot-stuffing scan, byte for byte."""
    server = smtp_server()
    text = encode_body("Hello\n.NET and .\n..leading dots written =2E\n" * 3)
    html = encode_body("<p>" + "a" * 74 + ".com</p>\n")  # a soft break before a dot
    assert clean_for_smtp(text, html)
    message_id = make_message_id(FROM)
    data = build_message(
        sender=FROM, to="reader@example.org", to_name=None, subject="Clean", text=text,
        html=html, message_id=message_id, date=datetime(2026, 11, 22, 7, tzinfo=UTC),
        list_id="digest.example.org", unsubscribe_url=LONG_URL,
    )  # fmt: skip
    item = Outgoing(1, "digest@example.org", ("reader@example.org",), data, message_id, True)
    outcomes = await deliver(sender(server), [item])
    assert [o.ok for o in outcomes.values()] == [True]
    assert server.messages[0].data == data
    parsed = email.message_from_bytes(server.messages[0].data, policy=email.policy.default)
    plain, _ = parsed.iter_parts()
    expected = "Hello\n.NET and .\n..leading dots written =2E\n" * 3
    assert plain.get_content().replace("\r\n", "\n") == expected


async def test_a_message_with_bare_line_feeds_still_arrives(smtp_server: Server) -> None:
    server = smtp_server()
    data = b"From: a@example.org\nTo: b@example.org\nSubject: x\n\n.hello\nworld\n"
    item = Outgoing(
        key=1, sender="a@example.org", recipients=("b@example.org",), data=data,
        message_id="<x@example.org>",
    )  # fmt: skip
    outcomes = await deliver(sender(server), [item])
    assert [o.ok for o in outcomes.values()] == [True]
    assert server.messages[0].data == data.replace(b"\n", b"\r\n")
