"""aiosmtplib's errors translated into :class:`~digest.errors.DeliveryError`, each carrying
the SMTP code, the server's reply and the recipient (or ``host:port`` for the session)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Literal

import aiosmtplib

from digest.deliver.base import reply_error, stops_run
from digest.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError


def stage_of(exc: aiosmtplib.SMTPResponseException) -> Literal["mail", "rcpt", "data"]:
    """The step of the transaction that ``exc`` answered."""
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "mail"
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return "rcpt"
    return "data"


def describe(exc: BaseException) -> str:
    """``exc`` in one line, for a message."""
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` (aiosmtplib wraps handshake failures), if any."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        if isinstance(seen, ssl.SSLError):
            return seen
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def check_stop(
    label: str,
    stage: Literal["mail", "rcpt", "data"],
    reply: aiosmtplib.SMTPResponseException | aiosmtplib.SMTPResponse,
) -> None:
    """Raise the error that stops the run when ``reply`` concerns every message (see
    :func:`~digest.deliver.base.stops_run`); return otherwise."""
    if stops_run(stage, reply.code):
        what = {
            530: "the server requires authentication (set smtp.username)",
            534: "the server finds the authentication mechanism too weak",
            535: "the server refused the credentials",
            538: "the server requires encryption",
        }.get(reply.code, "the server refuses the sender address")
        raise PermanentDeliveryError(label, what, code=reply.code, reply=reply.message)


def connection_error(
    exc: aiosmtplib.SMTPException | OSError,
    *,
    label: str,
    username: str | None,
    timeout: float,
    redact: Callable[[str], str],
) -> DeliveryError:
    """Translate an error met while opening a connection to ``label``; ``redact`` takes the
    password out of a reply to AUTH."""
    err: DeliveryError
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        err = PermanentDeliveryError(
            label,
            f"authentication as {username!r} failed",
            code=exc.code,
            reply=redact(exc.message),
        )
        err.hint = "check smtp.username and the password in the variable smtp.password_env names"
    elif isinstance(tls := ssl_error(exc), ssl.SSLCertVerificationError):
        err = PermanentDeliveryError(label, f"TLS certificate verification failed: {describe(tls)}")
        err.hint = (
            "check that smtp.host is the name on the server's certificate and that its"
            " authority is trusted by this system"
        )
    elif tls is not None:
        err = PermanentDeliveryError(label, f"TLS failed: {describe(tls)}")
        err.hint = 'check smtp.security: "tls" is for port 465, "starttls" for 587'
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        err = reply_error(label, exc.code, exc.message, "the server refused the session")
    elif isinstance(exc, aiosmtplib.SMTPTimeoutError):
        err = TransientDeliveryError(label, f"timed out: no answer within {timeout:g} s")
        err.hint = "check smtp.host, smtp.port and smtp.timeout"
    elif isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError | OSError):
        err = TransientDeliveryError(label, f"cannot connect: {describe(exc)}")
        err.hint = "check smtp.host and smtp.port, and that the mail server is running"
    else:  # capability missing (an SMTPException without a reply): the setup cannot work
        err = PermanentDeliveryError(label, describe(exc))
    return err
