"""The one exception tree of paper-digest; edges translate foreign errors into it.

::

    DigestError
    ├── ConfigError            a config file or CLI value is wrong (file, key, value, hint)
    ├── SourceError            a listing could not be fetched or is not the expected shape (url)
    ├── EmptyListingError      a one-off send's listing has no papers: nothing to send (day)
    ├── QueryError             a keyword query does not parse (query, position, hint)
    ├── RenderError            a template is missing or fails (template)
    ├── DeliveryError          a message could not be delivered (recipient, code, reply)
    │   ├── TransientDeliveryError   try again later (4xx, dropped connection, timeout)
    │   └── PermanentDeliveryError   the server refused for good (5xx)
    ├── StateError             the database cannot be read or written
    ├── MailboxError           the bounce mailbox cannot be read (mailbox, reason)
    ├── FeedError              the feed files cannot be written (folder, path, reason)
    └── RosterError            a subscriber file is unreadable or its header wrong (source, line)

Only ``cli`` (and later ``web``) turns these into words for people and exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


class DigestError(Exception):
    """Root of every error paper-digest raises on purpose."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ConfigProblem:
    """One wrong key or value of a configuration file."""

    key: str
    message: str
    value: object = None
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.key}: {self.message}" if self.key else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(DigestError):
    """The configuration (a file, an environment variable or a CLI value) is wrong.

    Holds every problem found, so the user can fix them all at once.
    """

    def __init__(
        self,
        problems: Sequence[ConfigProblem] | str,
        *,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(key="", message=problems)]
        self.problems = tuple(problems)
        self.path = path
        head = f"{path}: " if path else ""
        if len(self.problems) == 1:
            message = head + str(self.problems[0])
        else:
            lines = [f"{head}{len(self.problems)} problems:"]
            lines += [f"  - {p}" for p in self.problems]
            message = "\n".join(lines)
        super().__init__(message, hint=hint)


class SourceError(DigestError):
    """A listing could not be fetched, or its content is not what the source promises."""

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}", hint=hint)


class EmptyListingError(DigestError):
    """The listing of ``day`` has no papers (a weekend, a holiday, a date not yet listed),
    so a one-off ``digest send`` of it has nothing to send; ``source`` names where it was
    read from."""

    def __init__(self, day: date, source: str = "") -> None:
        self.day = day
        self.source = source
        super().__init__(
            f"the listing for {day.isoformat()} is empty: nothing to send",
            hint="pick a listing day with --date YYYY-MM-DD (`digest status` shows the last)",
        )


class QueryError(DigestError):
    """A keyword query does not parse; ``position`` is the 0-based character offset;
    ``hint`` what to write instead, when known (an unknown field: the fields)."""

    def __init__(self, query: str, position: int, reason: str, *, hint: str | None = None) -> None:
        self.query = query
        self.position = position
        self.reason = reason
        pointer = " " * position + "^"
        super().__init__(
            f"invalid query {query!r} at position {position}: {reason}\n    {query}\n    {pointer}",
            hint=hint,
        )


class RenderError(DigestError):
    """A template is missing or failed while rendering."""

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        self.reason = reason
        super().__init__(f"template {template}: {reason}")


class DeliveryError(DigestError):
    """A message could not be delivered to ``recipient``."""

    transient: bool = True

    def __init__(
        self, recipient: str, reason: str, *, code: int | None = None, reply: str | None = None
    ) -> None:
        self.recipient = recipient
        self.reason = reason
        self.code = code
        self.reply = reply
        code_text = f" ({code} {reply})" if code else ""
        super().__init__(f"delivery to {recipient} failed: {reason}{code_text}")


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: 4xx replies, dropped connections, timeouts."""

    transient = True


class PermanentDeliveryError(DeliveryError):
    """The server refused the message for good (5xx); do not retry."""

    transient = False


class StateError(DigestError):
    """The database cannot be opened, read or written."""


class FeedError(DigestError):
    """The feed files could not be written: ``folder`` is ``feeds.dir``, ``path`` the file
    or folder the system refused, ``reason`` its words (``Permission denied``)."""

    def __init__(
        self, folder: str, reason: str, *, path: str | None = None, hint: str | None = None
    ) -> None:
        self.folder = folder
        self.reason = reason
        self.path = path
        where = f" ({path})" if path and path != folder else ""
        super().__init__(f"cannot write the feeds in {folder}: {reason}{where}", hint=hint)


class MailboxError(DigestError):
    """The bounce mailbox cannot be reached, logged into or read; ``mailbox`` names it
    (``imap://bounces@imap.example.org:993/INBOX``, a maildir path)."""

    def __init__(self, mailbox: str, reason: str, *, hint: str | None = None) -> None:
        self.mailbox = mailbox
        self.reason = reason
        super().__init__(f"mailbox {mailbox}: {reason}", hint=hint)


class RosterError(DigestError):
    """A subscriber file as a whole is unusable: unreadable, not UTF-8, a wrong header.

    (A bad row is not an error of this kind: it is reported and the rest imported.)
    """

    def __init__(self, source: str, reason: str, *, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = f"{source}: line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
