"""Messages a bounce mailbox receives, written after the RFCs' own examples with invented
addresses: an RFC 3464 delivery status notification (its Appendix example), an RFC 5965
feedback report (its Appendix B.2 example), the common non-standard bounces (qmail's
"failure notice", Exim's "Mail delivery failed" with X-Failed-Recipients), a delay notice,
a mailto unsubscribe, and mail that is none of these.

Each returns RFC 5322 bytes with CRLF line ends, as a mail server stores them.
"""

from __future__ import annotations

import hashlib


def _tag(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def original(*, envelope: str, to: str, message_id: str, subject: str = "Papers for you") -> str:
    """The headers and a little of a digest as the bounce returns it."""
    return (
        f"Return-Path: <{envelope}>\n"
        f"Received: from mail.example.org by mx.example.net; Mon, 7 Dec 2026 08:00:01 +0000\n"
        f"From: Paper Digest <digest@example.org>\n"
        f"To: <{to}>\n"
        f"Subject: {subject}\n"
        f"Date: Mon, 7 Dec 2026 08:00:00 +0000\n"
        f"Message-ID: {message_id}\n"
        f"List-Unsubscribe: <https://digest.example.org/unsubscribe?token=x>\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n"
        f"\n"
        f"Today's papers: error 4.2.2 in a title, code 451 in an abstract.\n"
    )


def dsn(
    *,
    to: str,
    recipient: str = "ada@example.net",
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 <ada@example.net>: Recipient address rejected",
    returned: str | None = None,
    headers_only: bool = False,
    message_id: str = "<199407072116.RAA14128@mx.example.net>",
) -> bytes:
    """An RFC 3464 report (multipart/report; report-type=delivery-status) sent to ``to``
    (the envelope sender of the message that failed), returning ``returned``."""
    kind = "text/rfc822-headers" if headers_only else "message/rfc822"
    body = returned if returned is not None else "[original message goes here]\n"
    return _crlf(
        f"Date: Mon, 7 Dec 2026 08:01:05 +0000\n"
        f"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n"
        f"Message-Id: {message_id}\n"
        f"Subject: Returned mail: see transcript for details\n"
        f"To: <{to}>\n"
        f"Delivered-To: {to}\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type=delivery-status;\n"
        f'              boundary="RAA14128.773615765/mx.example.net"\n'
        f"\n"
        f"--RAA14128.773615765/mx.example.net\n"
        f"\n"
        f"The original message was received at Mon, 7 Dec 2026 08:00:01 +0000\n"
        f"\n"
        f"   ----- The following addresses had delivery problems -----\n"
        f"<{recipient}>  (unrecoverable error)\n"
        f"\n"
        f"--RAA14128.773615765/mx.example.net\n"
        f"content-type: message/delivery-status\n"
        f"\n"
        f"Reporting-MTA: dns; mx.example.net\n"
        f"Arrival-Date: Mon, 7 Dec 2026 08:00:01 +0000\n"
        f"\n"
        f"Original-Recipient: rfc822;{recipient}\n"
        f"Final-Recipient: rfc822;{recipient}\n"
        f"Action: {action}\n"
        f"Status: {status}\n"
        f"Diagnostic-Code: {diagnostic}\n"
        f"Last-Attempt-Date: Mon, 7 Dec 2026 08:01:04 +0000\n"
        f"\n"
        f"--RAA14128.773615765/mx.example.net\n"
        f"content-type: {kind}\n"
        f"\n"
        f"{body}"
        f"--RAA14128.773615765/mx.example.net--\n"
    )


def arf(
    *,
    to: str = "fbl@example.org",
    mail_from: str = "somespammer@example.net",
    rcpt_to: str = "user@example.com",
    feedback_type: str = "abuse",
    returned: str | None = None,
) -> bytes:
    """An RFC 5965 report (multipart/report; report-type=feedback-report), Appendix B.2."""
    body = (
        returned
        if returned is not None
        else (
            "From: <somespammer@example.net>\n"
            "To: <Undisclosed Recipients>\n"
            "Subject: Earn money\n"
            "MIME-Version: 1.0\n"
            "Content-type: text/plain\n"
            "Message-ID: 8787KJKJ3K4J3K4J3K4J3.mail@example.net\n"
            "Date: Thu, 02 Sep 2004 12:31:03 -0500\n"
            "\n"
            "Spam Spam Spam\n"
        )
    )
    return _crlf(
        f"From: <abusedesk@example.com>\n"
        f"Date: Thu, 8 Mar 2005 17:40:36 EDT\n"
        f"Subject: FW: Earn money\n"
        f"To: <{to}>\n"
        f"Message-ID: <arf-{feedback_type}-{_tag(mail_from)}@example.com>\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type=feedback-report;\n"
        f'     boundary="part1_13d.2e68ed54_boundary"\n'
        f"\n"
        f"--part1_13d.2e68ed54_boundary\n"
        f'Content-Type: text/plain; charset="US-ASCII"\n'
        f"Content-Transfer-Encoding: 7bit\n"
        f"\n"
        f"This is an email abuse report for an email message received from IP\n"
        f"192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.\n"
        f"\n"
        f"--part1_13d.2e68ed54_boundary\n"
        f"Content-Type: message/feedback-report\n"
        f"\n"
        f"Feedback-Type: {feedback_type}\n"
        f"User-Agent: SomeGenerator/1.0\n"
        f"Version: 1\n"
        f"Original-Mail-From: <{mail_from}>\n"
        f"Original-Rcpt-To: <{rcpt_to}>\n"
        f"Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\n"
        f"Reporting-MTA: dns; mail.example.com\n"
        f"Source-IP: 192.0.2.1\n"
        f"Authentication-Results: mail.example.com;\n"
        f"               spf=fail smtp.mail=somespammer@example.com\n"
        f"Reported-Domain: example.net\n"
        f"\n"
        f"--part1_13d.2e68ed54_boundary\n"
        f"Content-Type: message/rfc822\n"
        f"Content-Disposition: inline\n"
        f"\n"
        f"{body}"
        f"--part1_13d.2e68ed54_boundary--\n"
    )


def qmail_bounce(*, to: str, recipient: str, returned: str) -> bytes:
    """qmail's "failure notice": prose, then the original quoted after a marker line."""
    return _crlf(
        f"Return-Path: <>\n"
        f"Delivered-To: {to}\n"
        f"Date: 7 Dec 2026 08:02:00 -0000\n"
        f"From: MAILER-DAEMON@mx.example.com\n"
        f"To: {to}\n"
        f"Message-ID: <qmail-failure.{recipient}@mx.example.com>\n"
        f"Subject: failure notice\n"
        f"\n"
        f"Hi. This is the qmail-send program at mx.example.com.\n"
        f"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        f"This is a permanent error; I've given up. Sorry it didn't work out.\n"
        f"\n"
        f"<{recipient}>:\n"
        f"Sorry, no mailbox here by that name. (#5.1.1)\n"
        f"\n"
        f"--- Below this line is a copy of the message.\n"
        f"\n"
        f"{returned}"
    )


def exim_bounce(*, to: str, recipient: str, returned: str, soft: bool = False) -> bytes:
    """Exim's "Mail delivery failed" with X-Failed-Recipients, delivered to the plain bounce
    address (``to``): only the quoted copy carries the VERP envelope sender."""
    reason = "452 4.2.2 Mailbox full" if soft else "550 No such user here"
    return _crlf(
        f"Return-path: <>\n"
        f"Envelope-to: {to}\n"
        f"From: Mail Delivery System <Mailer-Daemon@mx.example.com>\n"
        f"To: {to}\n"
        f"Subject: Mail delivery failed: returning message to sender\n"
        f"Message-Id: <E1exim-{recipient}-{soft}@mx.example.com>\n"
        f"X-Failed-Recipients: {recipient}\n"
        f"Auto-Submitted: auto-replied\n"
        f"Date: Mon, 07 Dec 2026 08:03:00 +0000\n"
        f"\n"
        f"This message was created automatically by mail delivery software.\n"
        f"\n"
        f"A message that you sent could not be delivered to one or more of its\n"
        f"recipients. This is a permanent error. The following address(es) failed:\n"
        f"\n"
        f"  {recipient}\n"
        f"    host mx.example.com [192.0.2.7]\n"
        f"    SMTP error from remote mail server after RCPT TO:<{recipient}>:\n"
        f"    {reason}\n"
        f"\n"
        f"------ This is a copy of the message, including all the headers. ------\n"
        f"\n"
        f"{returned}"
    )


def unsubscribe_request(*, to: str, subject: str = "unsubscribe", sender: str) -> bytes:
    """What a mail program sends for the ``List-Unsubscribe`` mailto."""
    return _crlf(
        f"From: <{sender}>\n"
        f"To: <{to}>\n"
        f"Delivered-To: {to}\n"
        f"Subject: {subject}\n"
        f"Date: Mon, 7 Dec 2026 09:00:00 +0000\n"
        f"Message-ID: <unsub-{_tag(to, subject)}@example.net>\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n"
        f"\n"
        f"unsubscribe\n"
    )


def plain_mail(*, to: str, subject: str = "Question about the digest") -> bytes:
    """Mail that is neither a bounce nor a report nor an unsubscribe."""
    return _crlf(
        f"From: Bob <bob@example.net>\n"
        f"To: <{to}>\n"
        f"Subject: {subject}\n"
        f"Date: Mon, 7 Dec 2026 09:00:00 +0000\n"
        f"Message-ID: <question-{_tag(subject)}@example.net>\n"
        f"\n"
        f"Hello, can I get the digest twice a day?\n"
    )
