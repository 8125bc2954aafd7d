"""Mailbox: the bounce mailbox read by ``digest mailbox`` (and ``digest serve``).

``classify`` (pure: one raw message to a verdict: Bounce, Complaint, Unsubscribe or
Unmatched) over ``reports`` (pure: the fields and pieces of reports and bounces); the
readers, an edge: ``imap`` (IMAP over imaplib) and ``maildir`` (a maildir folder), both
behind ``base``'s Mailbox protocol. May import ``compose`` (the VERP tokens) and the bottom
layer; the run applies the verdicts to the store (``digest.run.mailbox``).
"""

from digest.mailbox.base import Letter, Mailbox
from digest.mailbox.classify import (
    Bounce,
    Complaint,
    Refs,
    Unmatched,
    Unsubscribe,
    Verdict,
    classify,
    message_key,
)
from digest.mailbox.imap import PROCESSED, ImapMailbox
from digest.mailbox.maildir import MaildirMailbox

__all__ = [
    "PROCESSED",
    "Bounce",
    "Complaint",
    "ImapMailbox",
    "Letter",
    "Mailbox",
    "MaildirMailbox",
    "Refs",
    "Unmatched",
    "Unsubscribe",
    "Verdict",
    "classify",
    "message_key",
]
