"""SMTP command pipelining (RFC 2920): MAIL, RCPT and DATA in one write, and each reply
paired with its command, in order, however the replies arrive."""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref

import aiosmtplib

log = logging.getLogger("digest.deliver")


class _Pipeline(asyncio.Protocol):
    """A connection's replies in order, however they arrive, so that commands can be
    pipelined (RFC 2920): aiosmtplib 5's protocol holds one parsed reply and drops what
    comes while it waits to be read. Put on the connection's transport in place of the
    library's protocol between transactions (see :func:`pipe_of`, :func:`unpipe`); the end of
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


def pipe_of(client: aiosmtplib.SMTP) -> _Pipeline | None:
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


async def pipelined(
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
