"""What one message of the bounce mailbox is: a bounce (an RFC 3464 delivery status
notification, or one of the common non-standard forms), a complaint (an RFC 5965 feedback
report), a mailto unsubscribe, or nothing we know (:class:`Unmatched`).

Pure: bytes in, a verdict out, for any bytes (it never raises). It finds what the message
refers to (:class:`Refs`: the VERP tokens of the addresses it was sent to or that the
returned original carries, and the original's Message-ID) but does not check them: the
tokens are verified against the secret, and looked up, by the caller.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from typing import Literal

from digest.compose.verp import TOKEN_PATTERN, tokens_in
from digest.mailbox.reports import (
    Fields,
    attached_originals,
    body_text,
    dsn_recipients,
    fields_of,
    first_address,
    header_text,
    message_ids_in,
    parts_of,
    quoted_part,
)


@dataclass(frozen=True)
class Refs:
    """What a message names: tokens (unverified, in the order found) and Message-IDs of
    the original message."""

    tokens: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bounce:
    """A delivery failed: for good (``hard``, a 5.x.x status) or for now (soft: 4.x.x, a
    delay, or a bounce whose reason we cannot tell)."""

    hard: bool
    recipient: str | None
    status: str | None  #: the enhanced status code, such as ``5.1.1``
    diagnostic: str
    refs: Refs

    @property
    def kind(self) -> Literal["hard", "soft"]:
        return "hard" if self.hard else "soft"


@dataclass(frozen=True)
class Complaint:
    """A reader marked a digest as spam (an ARF report of ``feedback_type``)."""

    feedback_type: str
    recipient: str | None
    refs: Refs


@dataclass(frozen=True)
class Unsubscribe:
    """A message asking to unsubscribe (``unsubscribe`` in its subject), with its tokens."""

    refs: Refs


@dataclass(frozen=True)
class Unmatched:
    """Not something we act on; ``reason`` says why."""

    reason: str


Verdict = Bounce | Complaint | Unsubscribe | Unmatched

#: Feedback types that are a reader's complaint (RFC 5965 §7.3); ``not-spam`` (RFC 6650)
#: and ``auth-failure`` (RFC 6591) are not.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
#: A delivery status notification's report type and part (RFC 3464), and their forms for
#: internationalised mail (RFC 6533).
DSN_REPORTS = ("delivery-status", "global-delivery-status")
DSN_PARTS = ("message/delivery-status", "message/global-delivery-status")
#: The headers that say where the message itself was delivered (the VERP address a bounce
#: was sent to): Postfix's Delivered-To and X-Original-To, Exim's Envelope-To.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_DAEMON = re.compile(r"(?:^|<|\s)(?:mailer[-_]?daemon|postmaster|mail[-_]?daemon)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status notification|failure|failed|has failed|problem|incomplete)"
    r"|failure notice|returned mail|mail delivery (?:failed|failure|subsystem|system)"
    r"|could not be delivered|non-?delivery|delivery notification|delayed mail",
    re.I,
)
_ENHANCED = re.compile(r"(?<![\d.])([245])\.\d{1,3}\.\d{1,3}(?![\d.])")
_BASIC = re.compile(r"(?<!\d)(5[0-5]\d|4[2-5]\d)(?=[ -]\S)")
_HARD_WORDS = re.compile(
    r"permanent|user unknown|unknown user|no such (?:user|recipient|mailbox)|does not exist"
    r"|doesn't exist|mailbox unavailable|address rejected|account (?:is|has been) disabled"
    r"|invalid recipient|recipient not found",
    re.I,
)
_SOFT_WORDS = re.compile(
    r"delay|temporar|will (?:retry|be retried|try again)|mailbox (?:is )?full|over quota",
    re.I,
)
_UNSUBSCRIBE = re.compile(r"\bunsubscribe\b", re.I)
_SUBJECT_TOKEN = re.compile(rf"(?<![\w.+-])({TOKEN_PATTERN})(?![\w.+-])")


def classify(raw: bytes, bounce_address: str) -> Verdict:
    """The verdict on one raw message (RFC 5322 bytes) of the mailbox of ``bounce_address``
    (``bounces@example.org``: its ``bounces+<token>@example.org`` addresses carry tokens)."""
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw)
        return _classify(msg, bounce_address)
    except (LookupError, ValueError, TypeError, UnicodeError, AttributeError):
        return Unmatched("unreadable message")


def message_key(raw: bytes) -> str:
    """A message's identity for "already seen": a hash of its Message-ID, or of its bytes
    when it has none. The same notification delivered twice has one key."""
    try:
        ident = header_text(BytesHeaderParser(policy=compat32).parsebytes(raw), "Message-ID")
    except (LookupError, ValueError, TypeError, UnicodeError):
        ident = ""
    ident = ident.strip()
    data = ("id:" + ident).encode("utf-8", "replace") if ident else b"raw:" + raw
    return hashlib.sha256(data).hexdigest()


def _classify(msg: Message, bounce_address: str) -> Verdict:
    parts = list(parts_of(msg))
    types = {p.get_content_type() for p in parts}
    report = msg.get_param("report-type", header="content-type")
    report_type = report.lower() if isinstance(report, str) else ""
    if report_type == "feedback-report" or "message/feedback-report" in types:
        return _complaint(msg, parts, bounce_address)
    if report_type in DSN_REPORTS or types & set(DSN_PARTS):
        return _dsn(msg, parts, bounce_address)
    if _looks_like_bounce(msg):
        return _plain_bounce(msg, parts, bounce_address)
    if _UNSUBSCRIBE.search(header_text(msg, "Subject")):
        return _unsubscribe(msg, bounce_address)
    return Unmatched("not a bounce, complaint or unsubscribe")


def _refs(msg: Message, parts: list[Message], bounce_address: str, *extra: str) -> Refs:
    """Tokens of the addresses ``msg`` was sent to, then those of ``extra`` texts and of the
    returned original (its headers, or a copy quoted in the text); its Message-IDs."""
    envelope = " ".join(header_text(msg, name) for name in ENVELOPE_HEADERS)
    originals = attached_originals(parts)
    texts = [envelope, *extra, *originals]
    quoted = "\n".join(quoted_part(body_text(p)) for p in parts if _is_prose(p))
    tokens: list[str] = []
    for text in [*texts, quoted]:
        tokens += [t for t in tokens_in(text, bounce_address) if t not in tokens]
    ids: list[str] = []
    for text in [*originals, quoted]:
        ids += [i for i in message_ids_in(text) if i not in ids]
    return Refs(tuple(tokens), tuple(ids))


def _is_prose(part: Message) -> bool:
    return (
        part.get_content_maintype() == "text" and part.get_content_type() != "text/rfc822-headers"
    )


def _complaint(msg: Message, parts: list[Message], bounce_address: str) -> Verdict:
    report: Fields = {}
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            report = fields_of(part)
            break
    feedback_type = (report.get("feedback-type") or [""])[0].strip().lower()
    if not feedback_type:
        return Unmatched("a feedback report without a Feedback-Type (RFC 5965 §3.1)")
    if feedback_type not in COMPLAINT_TYPES:
        return Unmatched(f"a feedback report of type {feedback_type!r}, not a complaint")
    mail_from = " ".join(report.get("original-mail-from", []))
    rcpt = " ".join(report.get("original-rcpt-to", []))
    return Complaint(
        feedback_type=feedback_type,
        recipient=first_address(rcpt),
        refs=_refs(msg, parts, bounce_address, mail_from),
    )


def _dsn(msg: Message, parts: list[Message], bounce_address: str) -> Verdict:
    recipients = []
    for part in parts:
        if part.get_content_type() in DSN_PARTS:
            recipients += dsn_recipients(part)
    graded = [(_grade(r), r) for r in recipients]
    failures = [(hard, r) for hard, r in graded if hard is not None]
    if not failures:
        return Unmatched("a delivery status notification that reports no failure")
    hard, rec = max(failures, key=lambda g: g[0] is True)
    diagnostic = (rec.get("diagnostic-code") or [""])[0]
    return Bounce(
        hard=bool(hard),
        recipient=first_address(" ".join(rec.get("final-recipient", [])))
        or first_address(" ".join(rec.get("original-recipient", []))),
        status=_status_code((rec.get("status") or [""])[0]),
        diagnostic=" ".join(diagnostic.split())[:500],
        refs=_refs(msg, parts, bounce_address),
    )


def _grade(rec: Fields) -> bool | None:
    """A per-recipient block of a DSN: True a permanent failure, False a temporary one or
    a delay, None no failure (delivered, relayed, expanded)."""
    action = (rec.get("action") or [""])[0].strip().lower()
    status = _status_code((rec.get("status") or [""])[0])
    if action == "delayed":
        return False
    if action != "failed":
        return None
    return status is None or status.startswith("5") or not status.startswith("4")


def _status_code(value: str) -> str | None:
    match = _ENHANCED.search(value)
    return match.group(0) if match else None


def _looks_like_bounce(msg: Message) -> bool:
    if msg.get("X-Failed-Recipients") is not None:
        return True
    subject = header_text(msg, "Subject")
    return bool(_DAEMON.search(header_text(msg, "From")) or _BOUNCE_SUBJECT.search(subject))


def _plain_bounce(msg: Message, parts: list[Message], bounce_address: str) -> Verdict:
    """A bounce in prose (qmail's "failure notice", Exim's "Mail delivery failed", the big
    providers' own forms): graded by the first status code in the prose before the
    returned original, else by its words; a bounce we cannot grade is soft."""
    subject = header_text(msg, "Subject")
    prose = "\n".join(body_text(p) for p in parts if _is_prose(p))
    head = prose[: len(prose) - len(quoted_part(prose))] if quoted_part(prose) else prose
    enhanced, basic = _ENHANCED.search(head), _BASIC.search(head)
    code = enhanced.group(1) if enhanced else basic.group(1)[0] if basic else None
    if re.search(r"delay", subject, re.I):
        hard = False
    elif code is not None:
        hard = code == "5"
    else:
        hard = bool(_HARD_WORDS.search(head)) and not _SOFT_WORDS.search(head)
    failed = header_text(msg, "X-Failed-Recipients")
    return Bounce(
        hard=hard,
        recipient=first_address(failed) or first_address(head, skip=bounce_address),
        status=enhanced.group(0) if enhanced else None,
        diagnostic=" ".join(head.split())[:500],
        refs=_refs(msg, parts, bounce_address),
    )


def _unsubscribe(msg: Message, bounce_address: str) -> Verdict:
    """``unsubscribe`` in the subject: the tokens of the address it was sent to and of the
    subject (never the From header: anyone can write any From)."""
    envelope = " ".join(header_text(msg, name) for name in ENVELOPE_HEADERS)
    tokens = tokens_in(envelope, bounce_address)
    for match in _SUBJECT_TOKEN.finditer(header_text(msg, "Subject")):
        token = match.group(1).lower()
        if token not in tokens:
            tokens.append(token)
    if not tokens:
        return Unmatched("an unsubscribe request without a token")
    return Unsubscribe(Refs(tuple(tokens)))
