"""Reading the bounce mailbox over IMAP (RFC 9051, RFC 3501) with :mod:`imaplib`: messages
without the keyword :data:`PROCESSED` are fetched without setting ``\\Seen`` and, once
processed, given that keyword and, with ``move_to``, moved to that folder (RFC 6851 MOVE;
without it, copied there and marked ``\\Deleted``, expunged alone with RFC 4315's UID
EXPUNGE where the server has it, skipped by the next pass where not). Nothing else is
deleted or expunged.

Blocking (imaplib): ``digest serve`` runs a pass in a thread. imaplib and socket errors
become :class:`MailboxError` here; the password goes only to ``login``, never into a message.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from collections.abc import Iterator
from typing import Any, Literal

from digest.errors import MailboxError
from digest.mailbox.base import Letter

#: The keyword (RFC 9051 §2.3.2) a processed message gets.
PROCESSED = "$DigestProcessed"
Security = Literal["tls", "starttls", "none"]
_FAILURES = (imaplib.IMAP4.error, OSError, EOFError)


class ImapMailbox:
    """One IMAP folder, opened for a pass: ``with ImapMailbox(...) as box:``.

    ``security``: "tls" (TLS from the first byte, port 993), "starttls" (upgrade required) or
    "none". Certificates are verified against the system store unless ``tls_context`` says
    otherwise.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security,
        username: str,
        password: str,
        folder: str = "INBOX",
        move_to: str | None = None,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self._password, self.folder = username, password, folder
        self.move_to = move_to
        self.timeout = timeout
        self.tls_context = tls_context or ssl.create_default_context()
        self.name = f"imap://{username}@{host}:{port}/{folder}"
        self._conn: imaplib.IMAP4 | None = None
        self._caps: set[str] = set()

    def __enter__(self) -> ImapMailbox:
        try:
            self._conn = self._connect()
            self._check(self._conn.login(self.username, self._password), "login")
            self._check(self._conn.select(_quoted(self.folder)), f"select {self.folder}")
            if self.move_to is not None:
                found = self._conn.status(_quoted(self.move_to), "(MESSAGES)")
                self._check(found, f"status {self.move_to} (mailbox.move_to)")
                _, caps = self._conn.capability()  # those after login (MOVE, UIDPLUS...)
                self._caps = set(" ".join(_text(c) for c in caps if c).upper().split())
        except MailboxError:
            self.__exit__()
            raise
        except _FAILURES as exc:
            self.__exit__()
            raise self._error(exc) from exc
        self._check_keywords()
        return self

    def _connect(self) -> imaplib.IMAP4:
        if self.security == "tls":
            return imaplib.IMAP4_SSL(
                self.host, self.port, ssl_context=self.tls_context, timeout=self.timeout
            )
        conn = imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            conn.starttls(self.tls_context)  # raises when the server does not offer it
        return conn

    def _check_keywords(self) -> None:
        """The folder must keep our keyword (PERMANENTFLAGS with ``\\*`` or the keyword),
        else every pass would process the same messages again."""
        assert self._conn is not None
        _, data = self._conn.response("PERMANENTFLAGS")
        flags = " ".join(_text(d) for d in data if d)
        keeps = "\\*" in flags or PROCESSED.lower() in flags.lower()
        if flags and not keeps and self.move_to is None:
            self.__exit__()
            raise MailboxError(
                self.name,
                f"the folder keeps no keywords of our own (PERMANENTFLAGS {flags})",
                hint="set mailbox.move_to to a folder processed messages go to",
            )

    def __exit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.logout()  # not CLOSE, which would expunge every message marked \\Deleted
        except _FAILURES:  # the connection is gone or broken: just close the socket
            with contextlib.suppress(OSError, AttributeError):
                conn.shutdown()

    def letters(self) -> Iterator[Letter]:
        """Each message of the folder without :data:`PROCESSED` and not deleted, by UID."""
        conn = self._require()
        try:
            typ, data = conn.uid("SEARCH", "UNDELETED", "UNKEYWORD", PROCESSED)
            self._check((typ, data), "search")
            uids = " ".join(_text(d) for d in data if d).split()
        except _FAILURES as exc:
            raise self._error(exc) from exc
        for uid in uids:
            raw = self._fetch(conn, uid)
            if raw is not None:
                yield Letter(uid, raw)

    def _fetch(self, conn: imaplib.IMAP4, uid: str) -> bytes | None:
        try:
            typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")  # PEEK: \Seen stays as it is
            self._check((typ, data), f"fetch {uid}")
        except _FAILURES as exc:
            raise self._error(exc) from exc
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None  # expunged meanwhile

    def mark_processed(self, letter: Letter) -> None:
        """Give ``letter`` the keyword :data:`PROCESSED` (where the folder keeps keywords)
        and, with ``move_to``, move it there."""
        conn = self._require()
        try:
            result = conn.uid("STORE", letter.ref, "+FLAGS.SILENT", f"({PROCESSED})")
            if self.move_to is None:
                self._check(result, f"store {letter.ref}")
                return
            target = _quoted(self.move_to)
            if "MOVE" in self._caps:
                self._check(conn.uid("MOVE", letter.ref, target), f"move {letter.ref}")
                return
            self._check(conn.uid("COPY", letter.ref, target), f"copy {letter.ref}")
            deleted = conn.uid("STORE", letter.ref, "+FLAGS.SILENT", "(\\Deleted)")
            self._check(deleted, f"store {letter.ref}")
            if "UIDPLUS" in self._caps:  # RFC 4315: expunge this message only
                self._check(conn.uid("EXPUNGE", letter.ref), f"expunge {letter.ref}")
        except _FAILURES as exc:
            raise self._error(exc) from exc

    def _require(self) -> imaplib.IMAP4:
        if self._conn is None:
            raise MailboxError(self.name, "not open")
        return self._conn

    def _check(self, result: tuple[str, Any], what: str) -> None:
        typ, data = result
        if typ != "OK":
            detail = " ".join(_text(d) for d in data or [] if d)
            raise MailboxError(self.name, f"{what} refused: {typ} {detail}".strip())

    def _error(self, exc: BaseException) -> MailboxError:
        """An imaplib or socket error as a :class:`MailboxError`, with a hint where one helps."""
        text = _text(exc.args[0]) if exc.args else type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:  # (111, "Connection refused"): the words
            text = exc.strerror
        login = re.search(r"auth|login|credential", text, re.I)
        if isinstance(exc, ssl.SSLCertVerificationError):
            hint = "the server's certificate is not trusted (mailbox.verify_tls = false is for"
            hint += " a test server only)"
        elif isinstance(exc, ssl.SSLError):
            hint = "the server does not speak TLS there: check mailbox.port and"
            hint += f' mailbox.security ("{self.security}")'
        elif isinstance(exc, imaplib.IMAP4.error) and login:
            hint = "check mailbox.username and the password in mailbox.password_env"
        elif isinstance(exc, OSError):
            hint = "check mailbox.host and mailbox.port"
        else:
            hint = None
        return MailboxError(self.name, text or type(exc).__name__, hint=hint)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _quoted(folder: str) -> str:
    """A folder name as an IMAP quoted string (RFC 9051 §4.3)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
