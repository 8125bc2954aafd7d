"""Deliver: hand finished messages to a mail server, or to an outbox folder.

``base`` (the Sender protocol, Outgoing, Outcome, send_one, the retry and error policy),
``smtp`` (SmtpSender: workers, retries, connection setup over aiosmtplib), ``connection``
(one worker's reused connection), ``transaction`` (MAIL/RCPT/DATA from ready bytes),
``pipelining`` (RFC 2920 pipelining and reply pairing), ``translate`` (aiosmtplib errors into
DeliveryError), ``outbox`` (the .eml folder sender). May import ``compose``, ``select`` and
the bottom layer; never the store or the run.
"""

from digest.deliver.base import (
    MAX_BACKOFF,
    DeliveryStats,
    Outcome,
    Outgoing,
    Sender,
    backoff_delay,
    reply_error,
    send_one,
    stops_run,
)
from digest.deliver.outbox import FileOutboxSender, outbox_name
from digest.deliver.smtp import SmtpSender
from digest.deliver.transaction import wire_data

__all__ = [
    "MAX_BACKOFF",
    "DeliveryStats",
    "FileOutboxSender",
    "Outcome",
    "Outgoing",
    "Sender",
    "SmtpSender",
    "backoff_delay",
    "outbox_name",
    "reply_error",
    "send_one",
    "stops_run",
    "wire_data",
]
