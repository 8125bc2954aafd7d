"""Reading the bounce mailbox from a maildir folder (``new/``, ``cur/``, ``tmp/``, as any
MDA writes them) with :mod:`mailbox`.

A message waits in ``new/`` (or in ``cur/`` without the Seen flag, where an IMAP server that
shares the folder moved it); processing moves it to ``cur/`` with the flag ``S`` appended to
its name (``<unique>:2,S``), which is how the maildir specification marks a message as
seen. The file is renamed, never rewritten: its bytes stay exactly as delivered.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator
from pathlib import Path

from digest.errors import MailboxError
from digest.mailbox.base import Letter

#: The flag of a processed message (maildir: "S", seen).
SEEN = "S"


class MaildirMailbox:
    """One maildir folder, opened for a pass: ``with MaildirMailbox(path) as box:``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._box: mailbox.Maildir | None = None

    def __enter__(self) -> MaildirMailbox:
        missing = [d for d in ("new", "cur") if not (self.path / d).is_dir()]
        if missing:
            raise MailboxError(
                self.name,
                f"not a maildir folder: no {' or '.join(d + '/' for d in missing)}",
                hint="mailbox.path names the folder holding new/, cur/ and tmp/",
            )
        self._box = mailbox.Maildir(self.path, factory=None, create=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._box = None

    def letters(self) -> Iterator[Letter]:
        """Each message in ``new/``, and each in ``cur/`` without the Seen flag."""
        for sub in ("new", "cur"):
            try:
                names = sorted(os.listdir(self.path / sub))
            except OSError as exc:
                raise MailboxError(self.name, f"cannot list {sub}/: {exc.strerror}") from exc
            for name in names:
                if name.startswith(".") or (sub == "cur" and SEEN in _flags(name)):
                    continue
                raw = self._read(_key(name))
                if raw is not None:
                    yield Letter(f"{sub}/{name}", raw)

    def _read(self, key: str) -> bytes | None:
        box = self._require()
        try:
            return box.get_bytes(key)  # the mailbox re-reads its table for a new key
        except KeyError:
            return None  # gone meanwhile (another reader, a human)
        except OSError as exc:
            raise MailboxError(self.name, f"cannot read {key}: {exc.strerror}") from exc

    def mark_processed(self, letter: Letter) -> None:
        """Move ``letter`` to ``cur/`` with the Seen flag (a rename: same file, same bytes)."""
        sub, _, name = letter.ref.partition("/")
        flags = "".join(sorted(set(_flags(name)) | {SEEN}))
        target = self.path / "cur" / f"{_key(name)}:2,{flags}"
        try:
            os.rename(self.path / sub / name, target)
        except FileNotFoundError:
            return  # moved meanwhile by someone else: nothing of ours to mark
        except OSError as exc:
            raise MailboxError(self.name, f"cannot move {name} to cur/: {exc.strerror}") from exc

    def _require(self) -> mailbox.Maildir:
        if self._box is None:
            raise MailboxError(self.name, "not open")
        return self._box


def _key(name: str) -> str:
    """The unique part of a maildir file name (before ``:2,flags``)."""
    return name.split(":", 1)[0]


def _flags(name: str) -> str:
    """The flags of a maildir file name (after ``:2,``)."""
    _, sep, info = name.partition(":2,")
    return info if sep else ""
