"""Reading the pieces of a report or a bounce: header values, the fields of a
``message/delivery-status`` or ``message/feedback-report`` part, prose bodies, the returned
original (attached, or quoted after a marker line), Message-IDs and addresses in text.

Pure and forgiving: any message :mod:`email` can parse in ``compat32`` mode, however
malformed, gives strings (possibly empty), never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message

#: A report part's fields by lowercase name, each with every value it had.
Fields = dict[str, list[str]]

_FIELD = re.compile(r"^([!-9;-~]+)[ \t]*:(.*)$")
_MESSAGE_ID = re.compile(r"(?im)^[ \t]*Message-ID[ \t]*:\s*(<[^<>\s@]+@[^<>\s]+>)")
_ADDRESS = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_DAEMON_LOCAL = re.compile(r"^(?:mailer[-_]?daemon|postmaster|mail[-_]?daemon)$", re.I)
#: Lines after which a plain bounce quotes the message it returns (Exim, qmail, Postfix's
#: and Sendmail's non-DSN forms, Exchange, Gmail), or where the copy's headers begin.
_ORIGINAL_MARKER = re.compile(
    r"(?im)^.*(?:original message|copy of (?:the|your) message|below this line"
    r"|returned message|undelivered message|message headers? follows?)[^\n]*$"
    r"|^(?:Return-Path|Received):[ \t]"
)


def parts_of(msg: Message) -> Iterator[Message]:
    """``msg`` and its MIME parts, depth first, without descending into attached messages
    (``message/rfc822``: the returned original) or a report's field blocks."""
    yield msg
    if msg.get_content_maintype() == "multipart" and isinstance(msg.get_payload(), list):
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                yield from parts_of(sub)


def header_values(msg: Message, name: str) -> list[str]:
    """Each value of header ``name``, RFC 2047 decoded, on one line."""
    texts = []
    for value in msg.get_all(name) or []:
        try:
            text = str(make_header(decode_header(str(value))))
        except (LookupError, ValueError, UnicodeError, TypeError):
            text = str(value)
        texts.append(" ".join(text.split()))
    return texts


def header_text(msg: Message, name: str) -> str:
    """Every value of header ``name``, RFC 2047 decoded, joined by spaces ("" if none)."""
    return " ".join(header_values(msg, name))


def body_text(part: Message) -> str:
    """A leaf part's body, transfer-decoded and read in its charset ("" for containers)."""
    try:
        data = part.get_payload(decode=True)
    except (LookupError, ValueError, TypeError, AssertionError):
        return ""
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _parse_fields(text: str) -> list[Fields]:
    """``Name: value`` blocks separated by blank lines (folded lines joined)."""
    blocks: list[Fields] = []
    current: Fields = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last is not None:
            current[last][-1] += " " + line.strip()
        elif match := _FIELD.match(line):
            last = match.group(1).lower()
            current.setdefault(last, []).append(match.group(2).strip())
    if current:
        blocks.append(current)
    return blocks


def field_blocks(part: Message) -> list[Fields]:
    """The blocks of fields of a report part (``message/delivery-status``: the per-message
    block, then one per recipient; ``message/feedback-report``: one)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                fields: Fields = {}
                for name in dict.fromkeys(k.lower() for k in block):
                    fields[name] = header_values(block, name)
                blocks.append(fields)
                text = block.get_payload()
                if isinstance(text, str):  # a block the parser took as a body
                    blocks += _parse_fields(text)
        return blocks
    return _parse_fields(body_text(part) or (payload if isinstance(payload, str) else ""))


def fields_of(part: Message) -> Fields:
    """Every field of a report part, its blocks merged."""
    merged: Fields = {}
    for block in field_blocks(part):
        for name, values in block.items():
            merged.setdefault(name, []).extend(values)
    return merged


def dsn_recipients(part: Message) -> list[Fields]:
    """The per-recipient blocks of a ``message/delivery-status`` part (RFC 3464 §2.3): the
    blocks with an ``Action`` field."""
    return [block for block in field_blocks(part) if "action" in block]


def attached_originals(parts: list[Message]) -> list[str]:
    """The headers of each returned original, as text: an attached ``message/rfc822``
    (RFC 3464 §2) or a ``text/rfc822-headers`` part (RFC 6522), or their internationalised
    forms ``message/global`` and ``message/global-headers`` (RFC 6533)."""
    texts = []
    for part in parts:
        kind = part.get_content_type()
        if kind == "text/rfc822-headers":
            texts.append(body_text(part))
        elif kind in ("message/rfc822", "message/global", "message/global-headers"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                original = inner[0]
                texts.append("\n".join(f"{k}: {header_text(original, k)}" for k in original))
            elif isinstance(inner, str):
                texts.append(inner)
    return texts


def quoted_part(text: str) -> str:
    """The returned original quoted in a plain bounce's text: from the first marker line
    (or the first ``Received:``/``Return-Path:`` header) on; "" when there is none."""
    match = _ORIGINAL_MARKER.search(text)
    return text[match.start() :] if match else ""


def message_ids_in(text: str) -> list[str]:
    """The ``Message-ID`` header values in ``text`` (headers, or a quoted message)."""
    found: list[str] = []
    for match in _MESSAGE_ID.finditer(text):
        if match.group(1) not in found:
            found.append(match.group(1))
    return found


def first_address(text: str, *, skip: str | None = None) -> str | None:
    """The first email address in ``text`` that is not a mailer daemon's, nor an address
    of the mailbox ``skip`` (``local@domain``: also its ``local+token`` forms); lowercase."""
    local, _, domain = (skip or "").lower().rpartition("@")
    for match in _ADDRESS.finditer(text):
        address = match.group(0).strip(".").lower()
        left, _, right = address.rpartition("@")
        if _DAEMON_LOCAL.match(left):
            continue
        if skip and right == domain and (left == local or left.startswith(local + "+")):
            continue
        return address
    return None
