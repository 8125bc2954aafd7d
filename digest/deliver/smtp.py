"""The delivery edge: hands ready-made message bytes to an SMTP server or to an outbox folder.

Two senders share the :class:`Sender` protocol. Neither builds nor re-flattens a message: the
bytes from :mod:`digest.message` reach the server exactly as given (``SMTP.sendmail``, never
``send_message``, which would re-fold long headers). aiosmtplib errors are translated here
into :class:`~digest.errors.DeliveryError`; the retry and error policy is in the pure
functions :func:`backoff_delay`, :func:`reply_error` and :func:`stops_run`.

Error policy of :class:`SmtpSender`, per message (an :class:`Outcome`, the run goes on):

* 5xx to RCPT or DATA: failed for good (:class:`PermanentDeliveryError`, code and reply).
* 4xx, a dropped connection, a timeout: retried on a fresh connection after an exponential
  backoff with jitter, up to ``max_attempts`` transactions; then a transient failure that the
  caller leaves pending for the next run. A timeout after the data was sent is ambiguous (the
  server may have taken the message): it is retried too, so a duplicate is possible there.
* Recipients accepted in one transaction are never sent the message again; recipients
  refused with 4xx while others were accepted (452 too many recipients) are retried at once
  in a new transaction.

Per server (``deliver`` raises a :class:`DeliveryError` whose ``recipient`` is
``host:port``; messages without an outcome were not sent and stay pending):

* Authentication refused (535), AUTH or STARTTLS not offered when needed, an untrusted TLS
  certificate, a 5xx greeting, or a reply meaning "authenticate first" (530) or "encryption
  required" (538): permanent, raised at once. Every message would meet the same fate, so no
  subscriber is marked failed for the server's or the operator's problem.
* The sender address refused with 5xx at MAIL FROM (all but 552, message too big): raised,
  for the same reason.
* A server that cannot be reached (connection refused, 421 greeting, timeouts) after
  ``max_attempts`` connection attempts: the worker gives up, deferring the message it held;
  when the last worker gives up, the :class:`TransientDeliveryError` is raised.

The password is only ever handed to aiosmtplib's ``login``; no message or log line holds it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import os
import random
import re
import ssl
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosmtplib

from digest.errors import (
    ConfigError,
    ConfigProblem,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from digest.files import write_atomic

log = logging.getLogger("digest.deliver")

Security = Literal["none", "starttls", "tls"]
SECURITY_MODES: tuple[Security, ...] = ("none", "starttls", "tls")

#: Longest wait between two tries, whatever the attempt number.
MAX_BACKOFF = 60.0
#: Replies that concern the session, not the message (RFC 4954 §6, RFC 3207): stop the run.
RUN_STOPPING_CODES = frozenset({530, 534, 535, 538})


@dataclass(frozen=True)
class Outgoing:
    """One message to deliver: envelope and the exact bytes to send."""

    key: object  # opaque to the sender (the caller's delivery id), handed back in the Outcome
    sender: str  # envelope MAIL FROM address
    recipients: tuple[str, ...]
    data: bytes
    message_id: str
    #: ``data`` has CRLF line ends only, ends with CRLF and has no line starting with "."
    #: (see :func:`digest.message.clean_for_smtp`): it goes into DATA without a scan.
    clean: bool = False


@dataclass(frozen=True)
class Outcome:
    """The fate of one :class:`Outgoing`: accepted (``ok``), or why not."""

    item: Outgoing
    ok: bool
    error: DeliveryError | None
    attempts: int
    reply: str | None  # the server's last reply text (for the file outbox, the file written)


@dataclass(frozen=True)
class DeliveryStats:
    """Counts of one :meth:`Sender.deliver` call: accepted, failed for good, left for later."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0


OnOutcome = Callable[[Outcome], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class Sender(Protocol):
    """Delivers a stream of messages, reporting each one's fate as soon as it is known."""

    async def deliver(
        self, items: AsyncIterable[Outgoing] | Iterable[Outgoing], on_outcome: OnOutcome
    ) -> DeliveryStats:
        """Send every item; await ``on_outcome`` once per item, right after its fate is known.

        Raises :class:`DeliveryError` when the whole run cannot go on (server unreachable,
        authentication refused, outbox not writable); items without an outcome by then were
        not delivered.
        """
        ...


# -- policy: pure functions -----------------------------------------------------------------


def backoff_delay(attempt: int, base: float, jitter: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    ``base·2^(attempt-1)``, capped at :data:`MAX_BACKOFF`, of which the upper half is scaled by
    ``jitter`` (0 ≤ jitter < 1) so that workers failing together do not retry together.
    """
    ceiling = min(MAX_BACKOFF, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter


def reply_error(recipient: str, code: int, reply: str, reason: str) -> DeliveryError:
    """The error for an SMTP reply: 5xx permanent, anything else worth another try."""
    cls = PermanentDeliveryError if 500 <= code <= 599 else TransientDeliveryError
    return cls(recipient, reason, code=code, reply=reply)


def stops_run(stage: Literal["mail", "rcpt", "data"], code: int) -> bool:
    """Whether a reply met while sending one message concerns every message of the run.

    Authentication or encryption demands (530, 534, 535, 538), and a 5xx refusal of the
    sender address (the same for every message) except 552, which is about this message's
    size (RFC 1870).
    """
    if code in RUN_STOPPING_CODES:
        return True
    return stage == "mail" and 500 <= code <= 599 and code != 552


async def send_one(sender: Sender, item: Outgoing) -> Outcome | None:
    """Deliver one message on its own (a confirmation, an alert, a manual send); its
    outcome, None if it got none. Raises :class:`DeliveryError` like ``deliver``."""
    outcomes: list[Outcome] = []

    async def keep(outcome: Outcome) -> None:
        outcomes.append(outcome)

    await sender.deliver([item], keep)
    return outcomes[0] if outcomes else None


def wire_data(message: bytes) -> bytes | None:
    """``message`` as the DATA phase carries it (dot-stuffed, ending in ``.`` CRLF), or
    None when its line endings are not all CRLF (then the client library normalises it).

    Our messages are built with CRLF line ends: stuffing them is two C-level scans, where
    the library's regexes cost ~1 ms per 88 KB message, twice (SIZE, then DATA).
    """
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        return None
    body = message.replace(b"\r\n.", b"\r\n..")  # RFC 5321 4.5.2
    if body.startswith(b"."):
        body = b"." + body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


#: An ASCII addr-spec that needs no quoting in MAIL FROM:<...> / RCPT TO:<...>.
_PLAIN = re.compile(r"[!#-'*+\-/-9=?A-Z^-~]+(?:\.[!#-'*+\-/-9=?A-Z^-~]+)*@[A-Za-z0-9.\-\[\]:]+")


async def sendmail(
    client: aiosmtplib.SMTP,
    sender: str,
    recipients: list[str],
    message: bytes,
    *,
    clean: bool = False,
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """``client.sendmail`` for a message we built (CRLF line ends), without the library's
    per-message regexes; the same replies, errors and RSET after a refusal. ``clean``:
    the caller knows ``message`` needs no dot-stuffing (see :attr:`Outgoing.clean`), so it
    is sent as it is, not even scanned. When the server offers PIPELINING (RFC 2920), MAIL,
    RCPT and DATA go in one write (see :class:`_Pipeline`).

    Falls back to ``client.sendmail`` for other messages, or when the client library is
    not the one this was written against (aiosmtplib 5: its protocol's command lock).
    """
    payload: tuple[bytes, ...] | None
    if clean:
        payload = (message, b".\r\n")
    else:
        data = wire_data(message)
        payload = None if data is None else (data,)
    protocol = client.protocol
    lock = getattr(protocol, "_command_lock", None) if protocol is not None else None
    greet = getattr(client, "_ehlo_or_helo_if_needed", None)
    plain = _PLAIN.fullmatch(sender) and all(map(_PLAIN.fullmatch, recipients))
    if payload is None or protocol is None or lock is None or greet is None or not plain:
        unpipe(client)
        return await client.sendmail(sender, recipients, message)  # also quoting, SMTPUTF8
    size = sum(map(len, payload)) - 3  # RFC 1870: the message, stuffed, without "." CRLF
    options = [b"SIZE=%d" % size] if client.supports_extension("size") else []
    await greet()  # EHLO (or HELO) on a new connection, as mail() does first
    pipe = _pipe(client)
    if pipe is not None:
        return await _pipelined(client, pipe, sender, recipients, payload, options)
    try:
        # MAIL and RCPT as aiosmtplib's mail() and rcpt() send them, without re-parsing
        # the addresses (bare addr-specs, checked when they were stored) for every message.
        reply = await client.execute_command(b"MAIL", b"FROM:<%s>" % sender.encode(), *options)
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)
        refused: dict[str, aiosmtplib.SMTPResponse] = {}
        errors: list[aiosmtplib.SMTPRecipientRefused] = []
        for rcpt in recipients:
            try:
                reply = await client.execute_command(b"RCPT", b"TO:<%s>" % rcpt.encode())
                if reply.code not in (250, 251):
                    raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, rcpt)
            except aiosmtplib.SMTPRecipientRefused as exc:
                errors.append(exc)
                refused[rcpt] = aiosmtplib.SMTPResponse(exc.code, exc.message)
        if len(errors) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(errors)
        reply = await _data(client, protocol, lock, payload)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPException):
            await client.rset()
        raise
    return refused, reply.message


class _Pipeline(asyncio.Protocol):
    """A connection's replies in order, however they arrive, so that commands can be
    pipelined (RFC 2920): aiosmtplib 5's protocol holds one parsed reply and drops what
    comes while it waits to be read. Put on the connection's transport in place of the
    library's protocol between transactions (see :func:`_pipe`, :func:`unpipe`); the end of
    the connection is passed on to that protocol, which closes the client."""

    def __init__(self, inner: asyncio.BaseProtocol, transport: asyncio.Transport) -> None:
        self.inner = inner
        self.transport = transport
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._replies: collections.deque[aiosmtplib.SMTPResponse | Exception] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._gone: Exception | None = None
        self._expected = 0  # replies still due for the commands written

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            line = bytes(self._buffer[start : end + 1])
            start = end + 1
            try:
                code = int(line[:3])
            except ValueError:
                text = line.decode("utf-8", "replace").strip()
                self._fail(aiosmtplib.SMTPResponseException(-1, f"malformed reply: {text}"))
                return
            self._lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                text = b"\n".join(self._lines).decode("utf-8", "surrogateescape")
                self._lines = []
                if self._expected:
                    self._expected -= 1
                    self._push(aiosmtplib.SMTPResponse(code, text))
                else:  # unsolicited (a 421 before closing, say): never paired with a command
                    log.debug("smtp reply without a command ignored: %s %s", code, text)
        del self._buffer[:start]
        if len(self._buffer) > 8192:  # a reply line longer than any server sends
            self._fail(aiosmtplib.SMTPResponseException(-1, "reply line too long"))

    def _push(self, item: aiosmtplib.SMTPResponse | Exception) -> None:
        self._replies.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        """Replies can no longer be told apart: whoever waits gets ``exc``; the end."""
        self._buffer.clear()
        self._push(exc)
        self.transport.close()

    def eof_received(self) -> bool:
        self._gone = aiosmtplib.SMTPServerDisconnected("Unexpected EOF received")
        self._push(self._gone)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        gone = aiosmtplib.SMTPServerDisconnected("Connection lost")
        gone.__cause__ = exc
        self._gone = self._gone or gone
        self._push(self._gone)
        _PIPES.pop(self.inner, None)
        self.inner.connection_lost(exc)

    def write(self, data: bytes, replies: int) -> None:
        """Send ``data``, which asks for ``replies`` replies."""
        if self._gone is not None or self.transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._expected += replies
        self.transport.write(data)

    async def reply(self) -> aiosmtplib.SMTPResponse:
        """The next reply, in the order the commands were sent."""
        while not self._replies:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        item = self._replies.popleft()
        if isinstance(item, Exception):
            self._replies.appendleft(item)  # every later read fails the same way
            raise item
        return item


#: The pipeline of each connection that has one, by the library's protocol of it (until
#: the connection ends or goes back to that protocol).
_PIPES: weakref.WeakKeyDictionary[asyncio.BaseProtocol, _Pipeline] = weakref.WeakKeyDictionary()


def _pipe(client: aiosmtplib.SMTP) -> _Pipeline | None:
    """The connection's pipeline, put in place when the server offers PIPELINING; None
    when it does not (or the transport cannot change protocols)."""
    protocol, transport = client.protocol, client.transport
    if protocol is None or not isinstance(transport, asyncio.Transport):
        return None
    pipe = _PIPES.get(protocol)
    if pipe is None and client.supports_extension("pipelining"):
        pipe = _PIPES[protocol] = _Pipeline(protocol, transport)
        transport.set_protocol(pipe)
    return pipe


def unpipe(client: aiosmtplib.SMTP) -> None:
    """Give the connection back to the library's protocol (before QUIT, say)."""
    protocol = client.protocol
    pipe = _PIPES.pop(protocol, None) if protocol is not None else None
    if pipe is not None and protocol is not None and not pipe.transport.is_closing():
        pipe.transport.set_protocol(protocol)


async def _pipelined(
    client: aiosmtplib.SMTP,
    pipe: _Pipeline,
    sender: str,
    recipients: list[str],
    payload: tuple[bytes, ...],
    options: list[bytes],
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """MAIL, RCPT and DATA in one write, then the message: two round trips where one
    command at a time takes four (RFC 2920 §3.1: nothing is sent past DATA before its
    reply). The same replies, errors and RSET as one command at a time."""
    head = b"MAIL FROM:<%s>%s\r\n" % (sender.encode(), b"".join(b" " + o for o in options))
    head += b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in recipients) + b"DATA\r\n"
    try:
        async with asyncio.timeout(client.timeout):
            pipe.write(head, len(recipients) + 2)
            mail = await pipe.reply()
            rcpts = [await pipe.reply() for _ in recipients]
            start = await pipe.reply()
        refused: dict[str, aiosmtplib.SMTPResponse] = {}
        errors: list[aiosmtplib.SMTPRecipientRefused] = []
        for rcpt, reply in zip(recipients, rcpts, strict=True):
            if reply.code not in (250, 251):
                errors.append(aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, rcpt))
                refused[rcpt] = reply
        failure: Exception | None = None
        if mail.code != 250:
            failure = aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender)
        elif len(errors) == len(recipients):
            failure = aiosmtplib.SMTPRecipientsRefused(errors)
        elif start.code != 354:
            failure = aiosmtplib.SMTPDataError(start.code, start.message)
        sent = failure is None
        if sent:
            async with asyncio.timeout(client.timeout):
                for index, piece in enumerate(payload):
                    pipe.write(piece, int(index == len(payload) - 1))
                done = await pipe.reply()
            if done.code == 250:
                return refused, done.message
            failure = aiosmtplib.SMTPDataError(done.code, done.message)
        assert failure is not None
        try:  # as after a refusal one command at a time: RSET, its own failure ignored
            async with asyncio.timeout(client.timeout):
                if start.code == 354 and not sent:
                    pipe.write(b".\r\n", 1)  # DATA taken all the same: end it, empty
                    await pipe.reply()
                pipe.write(b"RSET\r\n", 1)
                await pipe.reply()
        except (aiosmtplib.SMTPException, ConnectionError, TimeoutError):
            client.close()  # in no known state
        raise failure
    except TimeoutError as exc:
        client.close()
        raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from exc
    except aiosmtplib.SMTPServerDisconnected:
        client.close()
        raise


async def _data(
    client: aiosmtplib.SMTP, protocol: Any, lock: asyncio.Lock, payload: tuple[bytes, ...]
) -> aiosmtplib.SMTPResponse:
    """DATA, then the ready bytes, as aiosmtplib 5's own ``execute_data_command`` does."""
    try:
        async with lock:
            protocol._response_pending = True  # a reply is expected: do not drop it
            protocol.write(b"DATA\r\n")
            start = await protocol.read_response(timeout=client.timeout)
            if start.code != 354:
                raise aiosmtplib.SMTPDataError(start.code, start.message)
            protocol._response_pending = True
            for piece in payload:
                protocol.write(piece)
            reply = await protocol.read_response(timeout=client.timeout)
            if reply.code != 250:
                raise aiosmtplib.SMTPDataError(reply.code, reply.message)
            return reply  # type: ignore[no-any-return]
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()
        raise


def _stage(exc: aiosmtplib.SMTPResponseException) -> Literal["mail", "rcpt", "data"]:
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "mail"
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return "rcpt"
    return "data"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` (aiosmtplib wraps handshake failures), if any."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        if isinstance(seen, ssl.SSLError):
            return seen
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return None


async def _iterate(items: AsyncIterable[Outgoing] | Iterable[Outgoing]) -> AsyncIterator[Outgoing]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class _Tally:
    """Counts outcomes and passes them on."""

    def __init__(self, on_outcome: OnOutcome) -> None:
        self.on_outcome = on_outcome
        self.sent = self.failed = self.deferred = 0

    async def record(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.sent += 1
        elif outcome.error is not None and not outcome.error.transient:
            self.failed += 1
        else:
            self.deferred += 1
        await self.on_outcome(outcome)

    def stats(self) -> DeliveryStats:
        return DeliveryStats(sent=self.sent, failed=self.failed, deferred=self.deferred)


# -- SMTP -----------------------------------------------------------------------------------


class _GaveUp(Exception):
    """A worker could not (re)connect within its attempts; carries the last error."""

    def __init__(self, error: DeliveryError) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = 0  # transactions the message held had been through


class _Connection:
    """One worker's SMTP connection, opened on demand and reused for many messages."""

    def __init__(self, sender: SmtpSender, opening: set[asyncio.Task[aiosmtplib.SMTP]]) -> None:
        self.sender = sender
        self.client: aiosmtplib.SMTP | None = None
        self.used = 0
        self.opening = opening

    async def _open(self) -> aiosmtplib.SMTP:
        """A new connection, whose opening is never cancelled halfway: cancelled while its
        socket or TLS session was being set up, an attempt could leave the socket open
        (CPython 3.11's ``wait_for``, inside aiosmtplib). When this worker is cancelled
        (the run stops), the attempt goes on in ``opening``, and whoever delivers closes
        what it opened (see :func:`_settle`)."""
        attempt = asyncio.ensure_future(self.sender.open_connection())
        self.opening.add(attempt)
        attempt.add_done_callback(self.opening.discard)
        return await asyncio.shield(attempt)

    async def ready(self) -> aiosmtplib.SMTP:
        """A live connection with room for one more message; raises _GaveUp or a stopper."""
        s = self.sender
        if (
            self.client is not None
            and self.client.is_connected
            and self.used < s.max_per_connection
        ):
            return self.client
        await self.close()
        last: DeliveryError | None = None
        for attempt in range(s.max_attempts):
            if attempt:
                await s.sleep(backoff_delay(attempt, s.backoff, s.jitter()))
            try:
                self.client = await self._open()
            except TransientDeliveryError as exc:
                log.warning(
                    "smtp connect failed server=%s attempt=%d: %s", s.label, attempt + 1, exc
                )
                last = exc
                continue
            self.used = 0
            return self.client
        assert last is not None
        raise _GaveUp(last)

    def drop(self) -> None:
        """Forget the connection without a goodbye (after an error its state is unknown)."""
        if self.client is not None:
            _abort(self.client)
            self.client = None

    async def close(self) -> None:
        """QUIT politely when the connection is still up, then close it."""
        client, self.client = self.client, None
        if client is not None:
            transport = client.transport  # quit() lets go of it (a TLS one still closing)
            if client.is_connected:
                unpipe(client)
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()
            _abort(client, transport)
        # A closed transport lets go of its socket on the next loop turn (also one dropped
        # earlier by drop()); give it that turn before the caller's loop may end.
        await asyncio.sleep(0)


class SmtpSender:
    """Delivers over SMTP with ``concurrency`` connections, each carrying many messages.

    ``security``: "none" (plain, no credentials allowed), "starttls" (upgrade required; the
    run fails if the server does not offer it) or "tls" (TLS from the first byte, port 465).
    Certificates are verified against the system store unless ``tls_context`` says otherwise.
    Retries wait :func:`backoff_delay` with ``backoff`` seconds as the first ceiling; a
    connection carries at most ``max_per_connection`` messages. ``sleep`` and ``jitter`` are
    injected for tests. Raises :class:`ConfigError` for a
    configuration that would send the password in clear.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security,
        username: str | None,
        password: str | None,
        timeout: float = 30,
        concurrency: int = 4,
        max_per_connection: int = 200,
        max_attempts: int = 4,
        backoff: float = 1.0,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        problems: list[ConfigProblem] = []
        if security not in SECURITY_MODES:
            problems.append(
                ConfigProblem(
                    "smtp.security", f"expected one of {', '.join(SECURITY_MODES)}", security
                )
            )
        if security == "none" and username:
            problems.append(
                ConfigProblem(
                    "smtp.security",
                    'is "none" but smtp.username is set: the password would travel in clear',
                    security,
                    hint='use "starttls" (port 587) or "tls" (port 465)',
                )
            )
        if password and not username:
            problems.append(ConfigProblem("smtp.username", "a password is set but no username"))
        for key, value, low in (
            ("smtp.concurrency", concurrency, 1),
            ("smtp.max_per_connection", max_per_connection, 1),
            ("smtp.max_attempts", max_attempts, 1),
        ):
            if value < low:
                problems.append(ConfigProblem(key, f"expected at least {low}", value))
        if timeout <= 0:
            problems.append(ConfigProblem("smtp.timeout", "expected more than 0 seconds", timeout))
        if backoff < 0:
            problems.append(ConfigProblem("smtp.backoff", "expected at least 0 seconds", backoff))
        if problems:
            raise ConfigError(problems)
        self.host = host
        self.port = port
        self.label = f"{host}:{port}"
        self.security: Security = security
        self.username = username or None
        self._password = password
        self.timeout = timeout
        self.concurrency = concurrency
        self.max_per_connection = max_per_connection
        self.max_attempts = max_attempts
        self.backoff = backoff
        # Verified by default (hostname and chain); aiosmtplib would build the same context.
        self.tls_context = tls_context or ssl.create_default_context()
        self.local_hostname = local_hostname
        self.sleep = sleep
        self.jitter = jitter

    def __repr__(self) -> str:  # never shows the password
        return (
            f"SmtpSender({self.label}, security={self.security!r}, username={self.username!r}, "
            f"concurrency={self.concurrency})"
        )

    async def deliver(
        self, items: AsyncIterable[Outgoing] | Iterable[Outgoing], on_outcome: OnOutcome
    ) -> DeliveryStats:
        """See :meth:`Sender.deliver`. ``on_outcome`` may be awaited from several workers."""
        tally = _Tally(on_outcome)
        queue: asyncio.Queue[Outgoing | None] = asyncio.Queue(maxsize=self.concurrency)
        live = [self.concurrency]
        opening: set[asyncio.Task[aiosmtplib.SMTP]] = set()
        failure: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(self._worker(queue, tally, live, opening))
                async for item in _iterate(items):
                    await queue.put(item)
                await queue.put(None)  # end marker; each worker passes it on
        except BaseExceptionGroup as exc:
            failure = _first_leaf(exc)
        finally:
            await _settle(opening)
        if failure is not None:
            raise failure
        return tally.stats()

    async def _worker(
        self,
        queue: asyncio.Queue[Outgoing | None],
        tally: _Tally,
        live: list[int],
        opening: set[asyncio.Task[aiosmtplib.SMTP]],
    ) -> None:
        conn = _Connection(self, opening)
        stop: DeliveryError | None = None
        try:
            while True:
                item = await queue.get()
                if item is None:
                    queue.put_nowait(None)
                    return
                try:
                    outcome = await self._send(conn, item)
                except _GaveUp as exc:
                    await tally.record(
                        Outcome(item, False, exc.error, exc.attempts, exc.error.reply)
                    )
                    live[0] -= 1
                    if live[0] == 0:
                        stop = exc.error
                        break
                    log.warning("smtp worker gives up server=%s: %s", self.label, exc.error)
                    return
                await tally.record(outcome)
        finally:
            await conn.close()
        raise stop  # the last worker gave up: the server cannot be reached

    async def _send(self, conn: _Connection, item: Outgoing) -> Outcome:
        """Try one message until every recipient is settled or the attempts run out."""
        pending = list(item.recipients)
        if not pending:
            err = PermanentDeliveryError("", "the message has no recipient")
            return Outcome(item, False, err, 0, None)
        refused: list[DeliveryError] = []
        last: DeliveryError | None = None
        reply: str | None = None
        attempts = 0
        wait = False
        while pending and attempts < self.max_attempts:
            if wait:
                await self.sleep(backoff_delay(attempts, self.backoff, self.jitter()))
            try:
                client = await conn.ready()
            except _GaveUp as exc:
                exc.attempts = attempts
                raise
            attempts += 1
            conn.used += 1
            results, reply = await self._transaction(client, item, pending)
            accepted = [r for r, e in results.items() if e is None]
            refused += [e for e in results.values() if e is not None and not e.transient]
            retry = [e for e in results.values() if e is not None and e.transient]
            pending = [r for r, e in results.items() if e is not None and e.transient]
            if retry:
                last = retry[-1]
                log.warning(
                    "smtp transient failure server=%s message_id=%s attempt=%d: %s",
                    self.label,
                    item.message_id,
                    attempts,
                    last,
                )
                # Part of the recipients accepted (452 too many recipients): go on at once,
                # on the same connection. Otherwise start afresh after a pause.
                wait = not accepted
                if wait:
                    conn.drop()
        if not pending and not refused:
            return Outcome(item, True, None, attempts, reply)
        error = refused[0] if refused else last
        return Outcome(item, False, error, attempts, error.reply if error else None)

    async def _transaction(
        self, client: aiosmtplib.SMTP, item: Outgoing, recipients: list[str]
    ) -> tuple[dict[str, DeliveryError | None], str | None]:
        """One MAIL/RCPT/DATA transaction: each recipient's error (None: accepted), the reply."""
        first = recipients[0]
        err: DeliveryError
        try:
            refused, reply = await sendmail(
                client, item.sender, recipients, item.data, clean=item.clean
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            out: dict[str, DeliveryError | None] = {}
            for one in exc.recipients:
                self._check_stop("rcpt", one)
                out[one.recipient] = reply_error(
                    one.recipient, one.code, one.message, "the server refused the recipient"
                )
            return out, None
        except aiosmtplib.SMTPResponseException as exc:
            stage = _stage(exc)
            self._check_stop(stage, exc)
            reason = {
                "mail": f"the server refused the sender {item.sender}",
                "rcpt": "the server refused the recipient",
                "data": "the server refused the message",
            }[stage]
            return {r: reply_error(r, exc.code, exc.message, reason) for r in recipients}, None
        except aiosmtplib.SMTPTimeoutError as exc:
            err = TransientDeliveryError(
                first,
                f"timed out: no answer from {self.label} within {self.timeout:g} s"
                f" ({_describe(exc)})",
            )
        except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            err = TransientDeliveryError(
                first, f"connection to {self.label} lost: {_describe(exc)}"
            )
        except aiosmtplib.SMTPNotSupported as exc:
            err = PermanentDeliveryError(first, f"{self.label}: {_describe(exc)}")
        except ValueError as exc:  # an address aiosmtplib refuses to put on the wire
            err = PermanentDeliveryError(first, f"address cannot be sent: {_describe(exc)}")
        except aiosmtplib.SMTPException as exc:
            err = TransientDeliveryError(first, f"{self.label}: {_describe(exc)}")
        else:
            out = dict.fromkeys(recipients, None)
            for rcpt, response in refused.items():
                self._check_stop("rcpt", response)
                out[rcpt] = reply_error(
                    rcpt, response.code, response.message, "the server refused the recipient"
                )
            return out, reply
        return dict.fromkeys(recipients, err), None

    def _check_stop(
        self,
        stage: Literal["mail", "rcpt", "data"],
        reply: aiosmtplib.SMTPResponseException | aiosmtplib.SMTPResponse,
    ) -> None:
        if stops_run(stage, reply.code):
            what = {
                530: "the server requires authentication (set smtp.username)",
                534: "the server finds the authentication mechanism too weak",
                535: "the server refused the credentials",
                538: "the server requires encryption",
            }.get(reply.code, "the server refuses the sender address")
            raise PermanentDeliveryError(self.label, what, code=reply.code, reply=reply.message)

    async def open_connection(self) -> aiosmtplib.SMTP:
        """Connect, secure and authenticate one connection.

        Raises :class:`TransientDeliveryError` when worth another try (no answer, 4xx) and
        :class:`PermanentDeliveryError` when it cannot work (credentials, TLS, 5xx).
        """
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            # Never aiosmtplib's opportunistic STARTTLS: it would log in over a plain
            # connection to a server that does not offer TLS. Upgrade explicitly below.
            start_tls=False,
            tls_context=self.tls_context,
            local_hostname=self.local_hostname,
        )
        try:
            await client.connect()
            # connect() says EHLO only when it upgrades or logs in itself, which it must not;
            # without EHLO no extension is known (AUTH over implicit TLS would look missing).
            # A plain session without AUTH leaves it to sendmail, which falls back to HELO.
            if self.security == "starttls" or self.username is not None:
                await client.ehlo()
            if self.security == "starttls":
                if not client.supports_extension("starttls"):
                    err = PermanentDeliveryError(
                        self.label, "the server does not offer STARTTLS; not sending credentials"
                    )
                    err.hint = 'use security = "tls" if the server speaks TLS from the start'
                    raise err
                await client.starttls()
                await client.ehlo()  # RFC 3207 §4.2: forget what was learnt before TLS
            if self.username is not None:
                if not client.supports_extension("auth"):
                    raise PermanentDeliveryError(self.label, "the server does not offer AUTH")
                await client.login(self.username, self._password or "")
        except DeliveryError:
            await _close(client)
            raise
        except (aiosmtplib.SMTPException, OSError) as exc:
            await _close(client)
            raise self._connection_error(exc) from exc
        except BaseException:
            client.close()
            raise
        log.debug("smtp connected server=%s security=%s", self.label, self.security)
        return client

    def _redact(self, text: str) -> str:
        """``text`` (a server's reply to AUTH) without the password, plain or base64, should
        a server echo what it was sent."""
        if not self._password:
            return text
        user = (self.username or "").encode()
        password = self._password.encode()
        forms = [password, b"\0" + user + b"\0" + password]  # AUTH PLAIN sends the second
        for secret in [self._password, *(base64.b64encode(f).decode() for f in forms)]:
            text = text.replace(secret, "***")
        return text

    def _connection_error(self, exc: aiosmtplib.SMTPException | OSError) -> DeliveryError:
        """Translate an error met while opening a connection."""
        err: DeliveryError
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            err = PermanentDeliveryError(
                self.label,
                f"authentication as {self.username!r} failed",
                code=exc.code,
                reply=self._redact(exc.message),
            )
            err.hint = (
                "check smtp.username and the password in the variable smtp.password_env names"
            )
        elif isinstance(tls := _ssl_error(exc), ssl.SSLCertVerificationError):
            err = PermanentDeliveryError(
                self.label, f"TLS certificate verification failed: {_describe(tls)}"
            )
            err.hint = (
                "check that smtp.host is the name on the server's certificate and that its"
                " authority is trusted by this system"
            )
        elif tls is not None:
            err = PermanentDeliveryError(self.label, f"TLS failed: {_describe(tls)}")
            err.hint = 'check smtp.security: "tls" is for port 465, "starttls" for 587'
        elif isinstance(exc, aiosmtplib.SMTPResponseException):
            err = reply_error(self.label, exc.code, exc.message, "the server refused the session")
        elif isinstance(exc, aiosmtplib.SMTPTimeoutError):
            err = TransientDeliveryError(
                self.label, f"timed out: no answer within {self.timeout:g} s"
            )
        elif isinstance(
            exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError | OSError
        ):
            err = TransientDeliveryError(self.label, f"cannot connect: {_describe(exc)}")
        else:  # capability missing (an SMTPException without a reply): the setup cannot work
            err = PermanentDeliveryError(self.label, _describe(exc))
        return err


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


# -- file outbox ----------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def _abort(client: aiosmtplib.SMTP, transport: object = None) -> None:
    """Close at once, without a goodbye and without flushing: a transport merely "closing"
    could outlive the event loop (and warn about an unclosed socket). ``transport``: the
    client's, when it already let go of it (after QUIT)."""
    transport = transport or client.transport
    # Abort first: closing a TLS transport starts its shutdown handshake, after which an
    # abort no longer reaches the socket underneath (left to the garbage collector).
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    client.close()


async def _settle(opening: set[asyncio.Task[aiosmtplib.SMTP]]) -> None:
    """Wait for the connection attempts of stopped workers (each within the connect
    timeout) and close what they opened."""
    for attempt in list(opening):
        with contextlib.suppress(Exception):  # its worker is gone: nobody wants its error
            await _close(await attempt)


async def _close(client: aiosmtplib.SMTP) -> None:
    """:func:`_abort`, then give the loop the turn in which the socket is released."""
    _abort(client)
    await asyncio.sleep(0)


def outbox_name(message_id: str, when: datetime) -> str:
    """``<UTC timestamp to the microsecond>-<message-id reduced to safe characters>.eml``:
    names sort by time of writing."""
    safe = _UNSAFE.sub("_", message_id.strip().strip("<>")).strip("._") or "message"
    return f"{when.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{safe[:120]}.eml"


class FileOutboxSender:
    """Writes each message as an ``.eml`` file in ``directory`` (created when missing).

    Each file appears whole or not at all (temp file, fsync, rename, then the folder fsynced).
    Names (:func:`outbox_name`) sort in the order of writing and never repeat within one
    sender, even when ``now`` stands still: each file's time is at least a microsecond
    after the previous one's, and a name already taken moves on by one more.
    Raises :class:`TransientDeliveryError` when the folder cannot be written (disk full).
    """

    def __init__(self, directory: Path, *, now: Callable[[], datetime] | None = None) -> None:
        self.directory = Path(directory)
        self.now = now or (lambda: datetime.now(UTC))
        self._last: datetime | None = None

    def _path(self, message_id: str) -> Path:
        when = self.now().astimezone(UTC)
        while True:
            if self._last is not None and when <= self._last:
                when = self._last + timedelta(microseconds=1)
            self._last = when
            path = self.directory / outbox_name(message_id, when)
            if not path.exists():
                return path

    def __repr__(self) -> str:
        return f"FileOutboxSender({str(self.directory)!r})"

    async def deliver(
        self, items: AsyncIterable[Outgoing] | Iterable[Outgoing], on_outcome: OnOutcome
    ) -> DeliveryStats:
        """See :meth:`Sender.deliver`; the outcome's ``reply`` is the path written."""
        tally = _Tally(on_outcome)
        async for item in _iterate(items):
            path = self._path(item.message_id)
            try:
                await asyncio.to_thread(self._write, path, item.data)
            except OSError as exc:
                first = item.recipients[0] if item.recipients else ""
                raise TransientDeliveryError(
                    first, f"cannot write {path}: {exc.strerror or exc}"
                ) from exc
            await tally.record(Outcome(item, True, None, 1, str(path)))
        return tally.stats()

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        write_atomic(path, data)
        # The rename is durable only once the folder itself is on disk.
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
