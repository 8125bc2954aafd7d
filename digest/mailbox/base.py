"""The seam every mailbox reader shares: a :class:`Letter` (one message as stored) and the
:class:`Mailbox` protocol (the letters not yet processed; mark one processed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Letter:
    """One message of the mailbox: where it is (an IMAP UID, a maildir key) and its bytes."""

    ref: str
    raw: bytes


class Mailbox(Protocol):
    """A mailbox opened for one pass (a context manager: ``with reader as box``).

    :meth:`letters` yields each message not yet marked processed, once; a message marked
    with :meth:`mark_processed` (an IMAP keyword, a maildir message moved to ``cur/`` and
    flagged) is never yielded again, by this pass or a later one. Both raise
    :class:`~digest.errors.MailboxError`.
    """

    #: How the mailbox is named in messages (no password).
    name: str

    def __enter__(self) -> Mailbox: ...

    def __exit__(self, *exc: object) -> None: ...

    def letters(self) -> Iterator[Letter]: ...

    def mark_processed(self, letter: Letter) -> None: ...
