"""The delivery seam every sender shares: the :class:`Sender` protocol, what goes in
(:class:`Outgoing`) and out (:class:`Outcome`), and the pure retry and error policy.

Error policy of :class:`~digest.deliver.smtp.SmtpSender`, per message (an :class:`Outcome`,
the run goes on):

* 5xx to RCPT or DATA: failed for good (:class:`PermanentDeliveryError`, code and reply).
* 4xx, a dropped connection, a timeout: retried on a fresh connection after an exponential
  backoff with jitter, up to ``max_attempts`` transactions; then a transient failure that the
  caller leaves pending for the next run. A timeout after the data was sent is ambiguous (the
  server may have taken the message): it is retried too, so a duplicate is possible there.
* Recipients accepted in one transaction are never sent the message again; recipients
  refused with 4xx while others were accepted (452 too many recipients) are retried at once
  in a new transaction.

Per server (``deliver`` raises a :class:`DeliveryError` whose ``recipient`` is
``host:port``; messages without an outcome were not sent and stay pending):

* Authentication refused (535), AUTH or STARTTLS not offered when needed, an untrusted TLS
  certificate, a 5xx greeting, or a reply meaning "authenticate first" (530) or "encryption
  required" (538): permanent, raised at once. Every message would meet the same fate, so no
  subscriber is marked failed for the server's or the operator's problem.
* The sender address refused with 5xx at MAIL FROM (all but 552, message too big): raised,
  for the same reason.
* A server that cannot be reached (connection refused, 421 greeting, timeouts) after
  ``max_attempts`` connection attempts: the worker gives up, deferring the message it held;
  when the last worker gives up, the :class:`TransientDeliveryError` is raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from digest.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

#: Longest wait between two tries, whatever the attempt number.
MAX_BACKOFF = 60.0
#: Replies that concern the session, not the message (RFC 4954 §6, RFC 3207): stop the run.
RUN_STOPPING_CODES = frozenset({530, 534, 535, 538})


@dataclass(frozen=True)
class Outgoing:
    """One message to deliver: envelope and the exact bytes to send."""

    key: object  # opaque to the sender (the caller's delivery id), handed back in the Outcome
    sender: str  # envelope MAIL FROM address
    recipients: tuple[str, ...]
    data: bytes
    message_id: str
    #: ``data`` has CRLF line ends only, ends with CRLF and has no line starting with "."
    #: (see :func:`digest.message.clean_for_smtp`): it goes into DATA without a scan.
    clean: bool = False
    #: the listing date of a digest (None: a confirmation, an alert); the file outbox
    #: names its file with it
    day: date | None = None


@dataclass(frozen=True)
class Outcome:
    """The fate of one :class:`Outgoing`: accepted (``ok``), or why not."""

    item: Outgoing
    ok: bool
    error: DeliveryError | None
    attempts: int
    reply: str | None  # the server's last reply text (for the file outbox, the file written)


@dataclass(frozen=True)
class DeliveryStats:
    """Counts of one :meth:`Sender.deliver` call: accepted, failed for good, left for later."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0


OnOutcome = Callable[[Outcome], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class Sender(Protocol):
    """Delivers a stream of messages, reporting each one's fate as soon as it is known."""

    async def deliver(
        self, items: AsyncIterable[Outgoing] | Iterable[Outgoing], on_outcome: OnOutcome
    ) -> DeliveryStats:
        """Send every item; await ``on_outcome`` once per item, right after its fate is known.

        Raises :class:`DeliveryError` when the whole run cannot go on (server unreachable,
        authentication refused, outbox not writable); items without an outcome by then were
        not delivered.
        """
        ...


# -- policy: pure functions -----------------------------------------------------------------


def backoff_delay(attempt: int, base: float, jitter: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    ``base·2^(attempt-1)``, capped at :data:`MAX_BACKOFF`, of which the upper half is scaled by
    ``jitter`` (0 ≤ jitter < 1) so that workers failing together do not retry together.
    """
    ceiling = min(MAX_BACKOFF, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter


def reply_error(recipient: str, code: int, reply: str, reason: str) -> DeliveryError:
    """The error for an SMTP reply: 5xx permanent, anything else worth another try."""
    cls = PermanentDeliveryError if 500 <= code <= 599 else TransientDeliveryError
    return cls(recipient, reason, code=code, reply=reply)


def stops_run(stage: Literal["mail", "rcpt", "data"], code: int) -> bool:
    """Whether a reply met while sending one message concerns every message of the run.

    Authentication or encryption demands (530, 534, 535, 538), and a 5xx refusal of the
    sender address (the same for every message) except 552, which is about this message's
    size (RFC 1870).
    """
    if code in RUN_STOPPING_CODES:
        return True
    return stage == "mail" and 500 <= code <= 599 and code != 552


async def send_one(sender: Sender, item: Outgoing) -> Outcome | None:
    """Deliver one message on its own (a confirmation, an alert, a manual send); its
    outcome, None if it got none. Raises :class:`DeliveryError` like ``deliver``."""
    outcomes: list[Outcome] = []

    async def keep(outcome: Outcome) -> None:
        outcomes.append(outcome)

    await sender.deliver([item], keep)
    return outcomes[0] if outcomes else None


async def iterate(items: AsyncIterable[Outgoing] | Iterable[Outgoing]) -> AsyncIterator[Outgoing]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class Tally:
    """Counts outcomes and passes them on."""

    def __init__(self, on_outcome: OnOutcome) -> None:
        self.on_outcome = on_outcome
        self.sent = self.failed = self.deferred = 0

    async def record(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.sent += 1
        elif outcome.error is not None and not outcome.error.transient:
            self.failed += 1
        else:
            self.deferred += 1
        await self.on_outcome(outcome)

    def stats(self) -> DeliveryStats:
        return DeliveryStats(sent=self.sent, failed=self.failed, deferred=self.deferred)
