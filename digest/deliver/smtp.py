"""SMTP delivery over aiosmtplib: ``concurrency`` workers, each with a reused connection,
retrying per :mod:`digest.deliver.base`'s policy; aiosmtplib errors become
:class:`~digest.errors.DeliveryError` here, with the SMTP code and the recipient.

Neither builds nor re-flattens a message: the bytes from :mod:`digest.compose.message` reach
the server exactly as given (``SMTP.sendmail``, never ``send_message``, which would re-fold
long headers). The password is only ever handed to aiosmtplib's ``login``; no message or log
line holds it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Literal, Protocol

import aiosmtplib

from digest.deliver.base import (
    DeliveryStats,
    OnOutcome,
    Outcome,
    Outgoing,
    Sleep,
    Tally,
    backoff_delay,
    iterate,
    reply_error,
)
from digest.deliver.connection import Connection, GaveUp, close_client, settle
from digest.deliver.transaction import sendmail
from digest.deliver.translate import check_stop, connection_error, describe, stage_of
from digest.errors import (
    ConfigError,
    ConfigProblem,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = logging.getLogger("digest.deliver")

Security = Literal["none", "starttls", "tls"]
SECURITY_MODES: tuple[Security, ...] = ("none", "starttls", "tls")


def _setting_problems(
    *,
    security: Security,
    username: str | None,
    password: str | None,
    timeout: float,
    concurrency: int,
    max_per_connection: int,
    max_attempts: int,
    backoff: float,
) -> list[ConfigProblem]:
    """What is wrong with an :class:`SmtpSender`'s settings (empty when nothing is)."""
    problems: list[ConfigProblem] = []
    if security not in SECURITY_MODES:
        problems.append(
            ConfigProblem("smtp.security", f"expected one of {', '.join(SECURITY_MODES)}", security)
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
    return problems


class Pacer(Protocol):
    """A sending pace shared beyond this sender (``smtp.rate``, see ``digest.run.pace``)."""

    async def wait(self) -> None:
        """Return when the next transaction may start."""

    async def throttled(self, error: DeliveryError) -> None:
        """The server answered ``error`` (a 421 or 451 slows everyone down)."""


class NoPace:
    """No limit: every transaction starts at once."""

    async def wait(self) -> None:
        return

    async def throttled(self, error: DeliveryError) -> None:
        return


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
        problems = _setting_problems(
            security=security,
            username=username,
            password=password,
            timeout=timeout,
            concurrency=concurrency,
            max_per_connection=max_per_connection,
            max_attempts=max_attempts,
            backoff=backoff,
        )
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
        #: Awaited before each transaction, told of each transient failure: the run's
        #: shared pace (set by the run for ``smtp.rate``).
        self.pace: Pacer = NoPace()

    def __repr__(self) -> str:  # never shows the password
        return (
            f"SmtpSender({self.label}, security={self.security!r}, username={self.username!r}, "
            f"concurrency={self.concurrency})"
        )

    async def deliver(
        self, items: AsyncIterable[Outgoing] | Iterable[Outgoing], on_outcome: OnOutcome
    ) -> DeliveryStats:
        """See :meth:`Sender.deliver`. ``on_outcome`` may be awaited from several workers."""
        tally = Tally(on_outcome)
        queue: asyncio.Queue[Outgoing | None] = asyncio.Queue(maxsize=self.concurrency)
        live = [self.concurrency]
        opening: set[asyncio.Task[aiosmtplib.SMTP]] = set()
        failure: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(self._worker(queue, tally, live, opening))
                async for item in iterate(items):
                    await queue.put(item)
                await queue.put(None)  # end marker; each worker passes it on
        except BaseExceptionGroup as exc:
            failure = _first_leaf(exc)
        finally:
            await settle(opening)
        if failure is not None:
            raise failure
        return tally.stats()

    async def _worker(
        self,
        queue: asyncio.Queue[Outgoing | None],
        tally: Tally,
        live: list[int],
        opening: set[asyncio.Task[aiosmtplib.SMTP]],
    ) -> None:
        conn = Connection(self, opening)
        stop: DeliveryError | None = None
        try:
            while True:
                item = await queue.get()
                if item is None:
                    queue.put_nowait(None)
                    return
                try:
                    outcome = await self._send(conn, item)
                except GaveUp as exc:
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

    async def _send(self, conn: Connection, item: Outgoing) -> Outcome:
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
            except GaveUp as exc:
                exc.attempts = attempts
                raise
            await self.pace.wait()
            attempts += 1
            conn.used += 1
            results, reply = await self._transaction(client, item, pending)
            accepted = [r for r, e in results.items() if e is None]
            refused += [e for e in results.values() if e is not None and not e.transient]
            retry = [e for e in results.values() if e is not None and e.transient]
            pending = [r for r, e in results.items() if e is not None and e.transient]
            if retry:
                last = retry[-1]
                await self.pace.throttled(last)
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
                check_stop(self.label, "rcpt", one)
                out[one.recipient] = reply_error(
                    one.recipient, one.code, one.message, "the server refused the recipient"
                )
            return out, None
        except aiosmtplib.SMTPResponseException as exc:
            stage = stage_of(exc)
            check_stop(self.label, stage, exc)
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
                f" ({describe(exc)})",
            )
        except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            err = TransientDeliveryError(first, f"connection to {self.label} lost: {describe(exc)}")
        except aiosmtplib.SMTPNotSupported as exc:
            err = PermanentDeliveryError(first, f"{self.label}: {describe(exc)}")
        except ValueError as exc:  # an address aiosmtplib refuses to put on the wire
            err = PermanentDeliveryError(first, f"address cannot be sent: {describe(exc)}")
        except aiosmtplib.SMTPException as exc:
            err = TransientDeliveryError(first, f"{self.label}: {describe(exc)}")
        else:
            out = dict.fromkeys(recipients, None)
            for rcpt, response in refused.items():
                check_stop(self.label, "rcpt", response)
                out[rcpt] = reply_error(
                    rcpt, response.code, response.message, "the server refused the recipient"
                )
            return out, reply
        return dict.fromkeys(recipients, err), None

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
            await close_client(client)
            raise
        except (aiosmtplib.SMTPException, OSError) as exc:
            await close_client(client)
            raise connection_error(
                exc,
                label=self.label,
                username=self.username,
                timeout=self.timeout,
                redact=self._redact,
            ) from exc
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


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
