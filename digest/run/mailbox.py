"""One pass over the bounce mailbox (``digest mailbox``, and ``digest serve`` every
``mailbox.every_minutes``): each message not yet processed is classified
(:func:`digest.mailbox.classify.classify`), matched to its delivery or subscriber through
its signed tokens or the returned Message-ID, and applied to the store exactly once:

* a hard bounce fails its delivery and counts toward ``mail.max_hard_bounces`` as a 5xx
  does; a soft bounce is recorded and reported, nothing more;
* a complaint (ARF) or a mailto unsubscribe unsubscribes the subscriber at once;
* the message is then marked processed in the mailbox (IMAP keyword, maildir ``cur/``);
  one that matches nothing is left alone and counted.

A message's record and its effect are one transaction (``store.bounces``): a message whose
mark was lost (a crash between the two) is recognised as already seen and only marked.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from digest.compose import read_token
from digest.config import Config
from digest.errors import ConfigError, ConfigProblem
from digest.mailbox import (
    Bounce,
    Complaint,
    ImapMailbox,
    Letter,
    Mailbox,
    MaildirMailbox,
    Unmatched,
    Unsubscribe,
    Verdict,
    classify,
    message_key,
)
from digest.run.context import signing_secret, tls_context
from digest.store import Applied, DeliveryRef, Store

log = logging.getLogger("digest.mailbox")


@dataclass
class MailboxReport:
    """What one pass did, by kind of message."""

    hard: int = 0
    soft: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    unmatched: int = 0
    seen: int = 0  #: acted on by an earlier pass (its mark had been lost): only marked now
    suspended: list[str] = field(default_factory=list)  #: addresses suspended by hard bounces
    unsubscribed: list[str] = field(default_factory=list)  #: by complaints and mailto

    @property
    def processed(self) -> int:
        return self.hard + self.soft + self.complaints + self.unsubscribes + self.seen


def open_mailbox(config: Config) -> Mailbox:
    """The reader ``[mailbox]`` describes; ConfigError when there is none to read or the
    IMAP password is missing."""
    box = config.mailbox
    if box.kind == "maildir" and box.path is not None:
        return MaildirMailbox(box.path)
    if box.kind == "imap" and box.host and box.username:
        return ImapMailbox(
            box.host,
            box.imap_port,
            security=box.security,  # type: ignore[arg-type]
            username=box.username,
            password=box.password(),
            folder=box.folder,
            move_to=box.move_to,
            timeout=box.timeout,
            tls_context=tls_context(box.verify_tls),
        )
    raise ConfigError(
        [
            ConfigProblem(
                "mailbox.kind",
                "no mailbox to read",
                hint='set [mailbox] kind = "imap" (host, username) or "maildir" (path), and'
                " [mail] bounce_address",
            )
        ]
    )


def mailbox_secret(store: Store) -> bytes:
    """The secret the digests' tokens were signed with: a run's (``DIGEST_SECRET``, else
    the database's own; see :func:`~digest.run.context.signing_secret`). Raises ConfigError
    for a ``DIGEST_SECRET`` too short."""
    return signing_secret(os.environ, store.run_log.secret)


def read_mailbox(
    config: Config,
    store: Store,
    secret: bytes,
    *,
    box: Mailbox | None = None,
    now: datetime | None = None,
) -> MailboxReport:
    """Read the mailbox once (``box``, default :func:`open_mailbox`), act on what it holds,
    and say what it did. Raises :class:`MailboxError`, :class:`StateError`, ConfigError."""
    bounce_address = config.mail.bounce_address
    if not bounce_address:
        raise ConfigError([ConfigProblem("mail.bounce_address", "required to read the mailbox")])
    box = box or open_mailbox(config)
    applier = _Applier(config, store, secret, now or datetime.now(UTC))
    with box as opened:
        for letter in opened.letters():
            if applier.apply(letter, bounce_address):
                opened.mark_processed(letter)
    report = applier.report
    log.info(
        "mailbox %s: hard %d, soft %d, complaints %d, unsubscribes %d, unmatched %d, seen %d",
        box.name,
        report.hard,
        report.soft,
        report.complaints,
        report.unsubscribes,
        report.unmatched,
        report.seen,
    )
    return report


class _Applier:
    """Applies each letter's verdict to the store, counting in :attr:`report`."""

    def __init__(self, config: Config, store: Store, secret: bytes, now: datetime) -> None:
        self.config, self.store, self.secret, self.now = config, store, secret, now
        self.report = MailboxReport()

    def apply(self, letter: Letter, bounce_address: str) -> bool:
        """Act on one letter; True when it is to be marked processed."""
        key = message_key(letter.raw)
        if self.store.bounces.seen(key):
            self.report.seen += 1
            return True
        verdict = classify(letter.raw, bounce_address)
        applied = self._act(key, verdict)
        if applied is None:
            self.report.unmatched += 1
            reason = verdict.reason if isinstance(verdict, Unmatched) else "names nothing of ours"
            log.info("mailbox: left alone %s: %s", letter.ref, reason)
            return False
        if not applied.new:
            self.report.seen += 1
        return True

    def _act(self, key: str, verdict: Verdict) -> Applied | None:
        """The verdict applied; None when it names no delivery or subscriber of ours."""
        if isinstance(verdict, Unmatched):
            return None
        delivery = self._delivery(verdict)
        bounces = self.store.bounces
        if isinstance(verdict, Bounce):
            if delivery is None:
                return None
            detail = " ".join(filter(None, [verdict.status, verdict.recipient, verdict.diagnostic]))
            if not verdict.hard:
                applied = bounces.note(
                    key,
                    "soft",
                    detail,
                    when=self.now,
                    subscriber_id=delivery.subscriber_id,
                    delivery_id=delivery.id,
                )
                self.report.soft += applied.new
                return applied
            applied = bounces.hard_bounce(
                key,
                delivery.id,
                detail,
                max_hard_bounces=self.config.mail.max_hard_bounces,
                when=self.now,
            )
            self.report.hard += applied.new
            if applied.suspended:
                self.report.suspended.append(self._email(delivery.subscriber_id))
            return applied
        subscriber_id = self._subscriber(verdict) or (delivery.subscriber_id if delivery else None)
        sub = self.store.members.subscriber_by_id(subscriber_id) if subscriber_id else None
        if sub is None or sub.id is None:
            return None
        if isinstance(verdict, Complaint):
            reason, detail = "complaint", f"feedback-type {verdict.feedback_type}"
        else:
            reason, detail = "mailto", "unsubscribe by mail"
        applied = bounces.unsubscribe(key, sub.id, reason, detail, when=self.now)
        if isinstance(verdict, Complaint):
            self.report.complaints += applied.new
        else:
            self.report.unsubscribes += applied.new
        if applied.unsubscribed:
            self.report.unsubscribed.append(sub.email)
        return applied

    def _delivery(self, verdict: Bounce | Complaint | Unsubscribe) -> DeliveryRef | None:
        """The delivery a verdict names: by a delivery token, else by a Message-ID."""
        for token in verdict.refs.tokens:
            ref = read_token(self.secret, token)
            if ref is not None and ref.delivery_id is not None:
                found = self.store.bounces.delivery(ref.delivery_id)
                if found is not None:
                    return found
        for message_id in verdict.refs.message_ids:
            found = self.store.bounces.delivery_by_message_id(message_id)
            if found is not None:
                return found
        return None

    def _subscriber(self, verdict: Complaint | Unsubscribe) -> int | None:
        """The subscriber an unsubscribe token names."""
        for token in verdict.refs.tokens:
            ref = read_token(self.secret, token)
            if ref is not None and ref.subscriber_id is not None:
                return ref.subscriber_id
        return None

    def _email(self, subscriber_id: int) -> str:
        sub = self.store.members.subscriber_by_id(subscriber_id)
        return sub.email if sub else f"subscriber {subscriber_id}"
