"""One worker's SMTP connection: opened on demand, reused for many messages, and closed
without leaving a socket behind, even when the run stops halfway through opening it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import aiosmtplib

from digest.deliver.base import Sleep, backoff_delay
from digest.deliver.pipelining import unpipe
from digest.errors import DeliveryError, TransientDeliveryError

log = logging.getLogger("digest.deliver")


class GaveUp(Exception):
    """A worker could not (re)connect within its attempts; carries the last error."""

    def __init__(self, error: DeliveryError) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = 0  # transactions the message held had been through


class Dialer(Protocol):
    """What a connection needs of its sender (:class:`~digest.deliver.smtp.SmtpSender`):
    how to open one, and the policy for reusing and retrying it."""

    label: str
    max_per_connection: int
    max_attempts: int
    backoff: float
    sleep: Sleep
    jitter: Callable[[], float]

    async def open_connection(self) -> aiosmtplib.SMTP:
        """A new, ready connection; raises TransientDeliveryError or a stopper."""
        ...


class Connection:
    """One worker's SMTP connection, opened on demand and reused for many messages."""

    def __init__(self, sender: Dialer, opening: set[asyncio.Task[aiosmtplib.SMTP]]) -> None:
        self.sender = sender
        self.client: aiosmtplib.SMTP | None = None
        self.used = 0
        self.opening = opening

    async def _open(self) -> aiosmtplib.SMTP:
        """A new connection, whose opening is never cancelled halfway: cancelled while its
        socket or TLS session was being set up, an attempt could leave the socket open
        (CPython 3.11's ``wait_for``, inside aiosmtplib). When this worker is cancelled
        (the run stops), the attempt goes on in ``opening``, and whoever delivers closes
        what it opened (see :func:`settle`)."""
        attempt = asyncio.ensure_future(self.sender.open_connection())
        self.opening.add(attempt)
        attempt.add_done_callback(self.opening.discard)
        return await asyncio.shield(attempt)

    async def ready(self) -> aiosmtplib.SMTP:
        """A live connection with room for one more message; raises GaveUp or a stopper."""
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
        raise GaveUp(last)

    def drop(self) -> None:
        """Forget the connection without a goodbye (after an error its state is unknown)."""
        if self.client is not None:
            abort(self.client)
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
            abort(client, transport)
        # A closed transport lets go of its socket on the next loop turn (also one dropped
        # earlier by drop()); give it that turn before the caller's loop may end.
        await asyncio.sleep(0)


def abort(client: aiosmtplib.SMTP, transport: object = None) -> None:
    """Close at once, without a goodbye and without flushing: a transport merely "closing"
    could outlive the event loop (and warn about an unclosed socket). ``transport``: the
    client's, when it already let go of it (after QUIT)."""
    transport = transport or client.transport
    # Abort first: closing a TLS transport starts its shutdown handshake, after which an
    # abort no longer reaches the socket underneath (left to the garbage collector).
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    client.close()


async def settle(opening: set[asyncio.Task[aiosmtplib.SMTP]]) -> None:
    """Wait for the connection attempts of stopped workers (each within the connect
    timeout) and close what they opened."""
    for attempt in list(opening):
        with contextlib.suppress(Exception):  # its worker is gone: nobody wants its error
            await close_client(await attempt)


async def close_client(client: aiosmtplib.SMTP) -> None:
    """:func:`abort`, then give the loop the turn in which the socket is released."""
    abort(client)
    await asyncio.sleep(0)
