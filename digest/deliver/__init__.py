"""Deliver: hand finished messages to a mail server, or to an outbox folder.

``smtp`` (the Sender protocol, SMTP with pipelining, the .eml outbox, outcomes). May import
``compose``, ``select`` and the bottom layer; never the store or the run.
"""

from digest.deliver.smtp import (
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
    send_one,
    stops_run,
    wire_data,
)

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
