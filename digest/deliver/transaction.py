"""One mail transaction from ready bytes: MAIL, RCPT and DATA, dot-stuffed without a scan
when the message allows, pipelined when the server offers it."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import aiosmtplib

from digest.deliver.pipelining import pipe_of, pipelined, unpipe


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
    RCPT and DATA go in one write (see :class:`~digest.deliver.pipelining._Pipeline`).

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
    pipe = pipe_of(client)
    if pipe is not None:
        return await pipelined(client, pipe, sender, recipients, payload, options)
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
