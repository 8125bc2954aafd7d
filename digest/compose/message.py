"""Building one digest email as RFC 5322 bytes: multipart/alternative, UTF-8, safe headers.

Pure: strings in, bytes out. The headers are written and folded here, not by
:mod:`email.generator`, which folds a long ``List-Unsubscribe`` URL into an unreadable
encoded-word and, on Python 3.11, lets an encoded-word such as ``=?UTF-8?Q?=0A?=`` in a value
smuggle a header line through. Every value that came from outside (names, subject,
addresses) is cleaned of line breaks, control characters and encoded-words first.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime, parseaddr

from digest.errors import PermanentDeliveryError

CRLF = "\r\n"
#: RFC 5322 §2.1.1: lines SHOULD be at most 78 characters and MUST be at most 998; RFC 2047
#: §2 wants lines holding encoded-words within 76, which we keep for every header.
MAX_LINE = 76
HARD_LINE = 998

#: Headers :func:`build_message` writes itself; ``extra_headers`` cannot repeat them.
OWN_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "Precedence",
    "Content-Type",
)

# Line breaks and other controls become spaces; bidi overrides, lone surrogates and
# non-characters go (they would fail to encode or reorder what the reader sees).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
_URI = re.compile(r"[!#-;=?-~]+")  # printable ASCII without space, '"', '<' and '>'
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
_OWN = frozenset(h.lower() for h in OWN_HEADERS)
# RFC 2047 §5(3): characters that may stand for themselves in a "Q" word inside a phrase.
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_MAX_WORD = 75  # RFC 2047 §2: an encoded-word is at most 75 characters
_MAX_NAME = 100


def clean_header_text(value: str) -> str:
    """``value`` made safe for a header: one line, no controls, no encoded-words.

    Line breaks and control characters become spaces, runs of whitespace one space, and
    ``=?`` becomes ``= ?`` so that no reader decodes an encoded-word we did not write.
    """
    value = _INVISIBLE.sub("", _CONTROLS.sub(" ", value))
    return " ".join(value.split()).replace("=?", "= ?")


def _q_length(char: str) -> int:
    return sum(1 if b == 0x20 or b in _Q_LITERAL else 3 for b in char.encode("utf-8"))


def _encode_word(chunk: str, kind: str) -> str:
    data = chunk.encode("utf-8")
    if kind == "b":
        payload = base64.b64encode(data).decode("ascii")
    else:
        payload = "".join(
            "_" if b == 0x20 else chr(b) if b in _Q_LITERAL else f"={b:02X}" for b in data
        )
    return f"=?utf-8?{kind}?{payload}?="


def _chunks(text: str, kind: str, first: int) -> list[str]:
    """``text`` cut into pieces whose encoded-words fit: the first within ``first``
    characters, the others within 75. A cut falls after a space when there is one, so
    that decoders which wrongly put a space between adjacent encoded-words (Python's
    address parser does) still show the words apart, and never inside a character."""
    overhead = len("=?utf-8?q??=")
    limit = max(first, 24) - overhead
    chunks: list[str] = []
    current: list[str] = []

    def size(chars: list[str]) -> int:
        if kind == "b":
            return 4 * -(-len("".join(chars).encode("utf-8")) // 3)
        return sum(_q_length(c) for c in chars)

    for char in text:
        while current and size([*current, char]) > limit:
            space = max((i for i, c in enumerate(current) if c == " "), default=-1)
            cut = space + 1 if 0 < space + 1 < len(current) else len(current)
            chunks.append("".join(current[:cut]))
            current = current[cut:]
            limit = _MAX_WORD - overhead
        current.append(char)
    if current:
        chunks.append("".join(current))
    return chunks


def _encoded_words(text: str, first: int = _MAX_WORD) -> list[str]:
    """``text`` as RFC 2047 encoded-words ("Q", or "B" where shorter, as for non-Latin
    scripts), the first at most ``first`` characters long, the others 75, so every line
    stays within 76 characters."""
    candidates = [[_encode_word(c, kind) for c in _chunks(text, kind, first)] for kind in "qb"]
    return min(candidates, key=lambda words: sum(len(w) + 1 for w in words))


def _fold(name: str, parts: Sequence[str]) -> str:
    """``name: parts…`` with the parts separated by single spaces, folded (CRLF SP) between
    parts so lines stay within 78 characters where a part allows it; never inside a part."""
    if parts and len(name) + sum(map(len, parts)) + len(parts) + 1 <= MAX_LINE:
        return f"{name}: {' '.join(parts)}"  # one line: what the loop below would make
    line = f"{name}:"
    lines: list[str] = []
    for index, part in enumerate(parts):
        if index and len(line) + 1 + len(part) > MAX_LINE:
            lines.append(line)
            line = " " + part
        else:
            line += " " + part
    lines.append(line)
    if any(len(x) > HARD_LINE for x in lines):
        raise ValueError(f"{name}: a part of the value is longer than {HARD_LINE} characters")
    return CRLF.join(lines)


def _unstructured(header: str, text: str) -> list[str]:
    """The parts of free text in ``header``: words as they are, or encoded-words if the text
    is not ASCII."""
    text = clean_header_text(text)
    if text.isascii() and all(len(w) <= HARD_LINE - 40 for w in text.split(" ")):
        return text.split(" ") if text else []
    return _encoded_words(text, MAX_LINE - len(header) - 4)


def _phrase(header: str, name: str) -> list[str]:
    """The parts of a display name in ``header``: atoms, one quoted-string, or encoded-words."""
    name = clean_header_text(name)[:_MAX_NAME].strip()
    if not name:
        return []
    if not name.isascii():
        return _encoded_words(name, MAX_LINE - len(header) - 4)
    if _ATEXT_PHRASE.fullmatch(name):
        return name.split(" ")
    return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']


def _addr_spec(address: str) -> str:
    """``local@domain`` checked (dot-atom local part, IDNA domain); raises ValueError."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not _DOT_ATOM.fullmatch(local) or "=?" in local:
        raise ValueError(f"not a deliverable address: {address!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not a deliverable address: {address!r}") from exc
    if not _DOMAIN.fullmatch(domain) or len(local) > 64 or len(domain) > 253:
        raise ValueError(f"not a deliverable address: {address!r}")
    return f"{local}@{domain}"


def _mailbox_parts(header: str, name: str | None, address: str) -> list[str]:
    return [*_phrase(header, name or ""), f"<{address}>"]


def _uri(value: str, schemes: tuple[str, ...]) -> str:
    value = value.strip()
    if not _URI.fullmatch(value) or "=?" in value or not value.lower().startswith(schemes):
        raise ValueError(f"not a usable {'/'.join(schemes)} URI for a header: {value!r}")
    return value


@functools.lru_cache(maxsize=64)
def sender_address(sender: str) -> str:
    """The address of a ``Name <local@domain>`` mailbox; raises ValueError if it has none."""
    return _addr_spec(parseaddr(sender)[1])


def make_message_id(sender: str, unique: str | None = None) -> str:
    """A Message-ID ``<unique@domain>`` in the domain of ``sender``'s address.

    ``unique`` (dot-atom characters, e.g. ``"2026-11-22.42.a1b2c3"``) defaults to 128 random
    bits. Store the result with the delivery and pass it to :func:`build_message` on every
    retry, so one digest keeps one Message-ID.
    """
    domain = sender_address(sender).rpartition("@")[2]
    unique = secrets.token_hex(16) if unique is None else unique
    if not _DOT_ATOM.fullmatch(unique) or "=?" in unique:
        raise ValueError(f"unusable Message-ID left part: {unique!r}")
    return f"<{unique}@{domain}>"


@functools.lru_cache(maxsize=64)
def list_id_for(sender: str) -> str:
    """A List-Id value derived from the From mailbox: ``Name <local.domain>`` (RFC 2919)."""
    name, address = parseaddr(sender)
    local, _, domain = _addr_spec(address).rpartition("@")
    list_name = re.sub(r"[^A-Za-z0-9-]+", "-", local).strip("-") or "digest"
    return f"{name} <{list_name}.{domain}>" if name else f"<{list_name}.{domain}>"


# The same for every message of a run: folded once (a refused value raises every time).
@functools.lru_cache(maxsize=64)
def _from_line(sender: str) -> str:
    name, address = parseaddr(sender)
    return _fold("From", _mailbox_parts("From", name, _addr_spec(address)))


@functools.lru_cache(maxsize=64)
def _list_id_line(list_id: str) -> str:
    return _fold("List-Id", _list_id_parts(list_id))


# Subjects repeat: one per count of papers and listing day.
@functools.lru_cache(maxsize=256)
def _subject_line(subject: str) -> str:
    return _fold("Subject", _unstructured("Subject", subject))


@functools.lru_cache(maxsize=16)
def _date_line(date: datetime, offset: timedelta | None) -> str:
    """``offset`` is in the key: equal instants in other zones are equal datetimes."""
    return f"Date: {format_datetime(date)}"


def _list_id_parts(list_id: str) -> list[str]:
    match = re.fullmatch(r"(.*)<([^<>]*)>\s*", list_id, re.DOTALL)
    phrase, ident = (match.group(1), match.group(2)) if match else ("", list_id.strip())
    if not _DOT_ATOM.fullmatch(ident) or "." not in ident or "=?" in ident:
        raise ValueError(f"List-Id needs a dotted identifier such as digest.example.org: {ident!r}")
    return [*_phrase("List-Id", phrase), f"<{ident}>"]


def _normalise_newlines(body: str) -> str:
    return body.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True, slots=True)
class Body:
    """A body already in its transfer encoding: CRLF-separated lines of at most 76 characters."""

    encoding: str  #: ``quoted-printable`` or ``base64``
    data: bytes
    #: Whether a line of ``data`` may start with ``.`` (SMTP would have to dot-stuff it);
    #: False only when whoever built ``data`` knows (:func:`quoted_printable` output, base64).
    dotted: bool = True


def clean_for_smtp(*bodies: str | Body) -> bool:
    """Whether a message :func:`build_message` makes of these bodies can go into SMTP's DATA
    as it is: true when every body is known to have no line starting with ``.`` (every
    other line of the message is ours: headers, part headers and boundaries, CRLF ended)."""
    return all(isinstance(body, Body) and not body.dotted for body in bodies)


def quoted_printable(text: str) -> bytes:
    """``text`` as UTF-8 quoted-printable with CRLF line breaks (RFC 2045 §6.7), with no line
    starting with ``.``: SMTP can send it without dot-stuffing (and without scanning it).

    Line-local: pieces that each end with a newline can be encoded apart and joined, which
    is how a digest is assembled from fragments encoded once.
    """
    data = _normalise_newlines(text).encode("utf-8", "replace")
    qp = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")
    if qp.startswith(b".") or b"\r\n." in qp:
        qp = _undotted(qp)
    return qp


def _undotted(qp: bytes) -> bytes:
    """``qp`` with each line that starts with "." rewritten by :func:`_undot` (such lines
    are few: found with ``find``, not a regular expression tried at every character)."""
    pieces: list[bytes] = []
    done = 0
    at = 0 if qp.startswith(b".") else _dotted_line(qp, 0)
    while at != -1:
        end = qp.find(b"\r\n", at)
        end = len(qp) if end == -1 else end
        pieces += (qp[done:at], b"\r\n".join(_undot(qp[at:end])))
        done = end
        at = _dotted_line(qp, end)
    pieces.append(qp[done:])
    return b"".join(pieces)


def _dotted_line(qp: bytes, start: int) -> int:
    """Where the next line that starts with "." begins, from ``start`` on; -1: none."""
    found = qp.find(b"\r\n.", start)
    return -1 if found == -1 else found + 2


def _undot(line: bytes) -> list[bytes]:
    """One encoded line as lines that do not start with ``.``: the dot written ``=2E``, and
    the line split by a soft break where that makes it longer than 76 characters."""
    if not line.startswith(b"."):
        return [line]
    soft = line.endswith(b"=")  # "=" is always escaped, so a last "=" is a soft break
    body = b"=2E" + (line[1:-1] if soft else line[1:])
    if len(body) <= MAX_LINE - soft:
        return [body + b"=" * soft]
    cut = MAX_LINE - 1  # the first line keeps room for its soft break
    if body[cut - 1 : cut] == b"=":  # never split an escape
        cut -= 1
    elif body[cut - 2 : cut - 1] == b"=":
        cut -= 2
    return [body[:cut] + b"=", *_undot(body[cut:] + b"=" * soft)]


def _base64_size(n: int) -> int:
    full, rest = divmod(n, 57)  # 57 bytes make one line of 76 characters
    lines = full + (1 if rest else 0)
    return full * 76 + 4 * -(-rest // 3) + 2 * max(lines - 1, 0)


def encode_body(text: str) -> Body:
    """``text`` as UTF-8 in quoted-printable, or base64 when that is shorter (text mostly
    outside ASCII)."""
    qp = quoted_printable(text)
    data = _normalise_newlines(text).encode("utf-8", "replace")
    if len(qp) <= _base64_size(len(data)):
        return Body("quoted-printable", qp, dotted=False)  # see quoted_printable
    lines = [binascii.b2a_base64(data[i : i + 57], newline=False) for i in range(0, len(data), 57)]
    return Body("base64", b"\r\n".join(lines), dotted=False)  # base64 has no "."


def encoded_size(text: str) -> int:
    """How many bytes ``text`` takes as a body (see :func:`encode_body`), for size budgets
    such as Gmail's clipping of HTML parts over 102 KB."""
    data = _normalise_newlines(text).encode("utf-8", "replace")
    return min(len(quoted_printable(text)), _base64_size(len(data)))


def _part(content_type: str, body: str | Body) -> tuple[bytes, bytes]:
    """A part's headers and its encoded body (joined into the message with the rest: a
    digest's body is ~100 KB, copied once)."""
    if isinstance(body, str):
        body = encode_body(body)
    head = f'Content-Type: {content_type}; charset="utf-8"{CRLF}'
    head += f"Content-Transfer-Encoding: {body.encoding}{CRLF}{CRLF}"
    return head.encode("ascii"), body.data


def _unsubscribe_lines(url: str | None, mailto: str | None) -> list[str]:
    """``List-Unsubscribe`` (RFC 2369) with ``url`` and ``mailto`` (a bare address gets
    ``?subject=unsubscribe``), and ``List-Unsubscribe-Post`` for an https ``url`` (RFC 8058
    §3.1); none for neither (a one-off to someone who is not on the list)."""
    uris = [f"<{_uri(url, ('https://', 'http://'))}>"] if url else []
    if mailto:
        mailto = mailto.strip()
        if not mailto.lower().startswith("mailto:"):
            mailto = f"mailto:{_addr_spec(mailto)}?subject=unsubscribe"
        uris.append(f"<{_uri(mailto, ('mailto:',))}>")
    if not uris:
        return []
    lines = [_fold("List-Unsubscribe", [u + "," for u in uris[:-1]] + uris[-1:])]
    if url and url.strip().lower().startswith("https://"):
        lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    return lines


def build_message(
    *,
    sender: str,
    to: str,
    to_name: str | None,
    subject: str,
    text: str | Body,
    html: str | Body,
    message_id: str,
    date: datetime,
    list_id: str,
    unsubscribe_url: str | None,
    unsubscribe_mailto: str | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """One ``multipart/alternative`` message (text/plain, then text/html) as CRLF bytes.

    ``sender`` is a mailbox such as ``Paper Digest <digest@example.org>``; ``to`` a bare
    address and ``to_name`` its display name; ``message_id`` from :func:`make_message_id`;
    ``date`` timezone-aware; ``list_id`` as ``Name <digest.example.org>`` or the bare id;
    ``unsubscribe_url`` an http(s) URL and ``unsubscribe_mailto`` a ``mailto:`` URI or a bare
    address (then ``?subject=unsubscribe`` is added); with neither (a one-off to someone who
    is not on the list), no ``List-Unsubscribe``. ``List-Unsubscribe-Post`` is written only
    for an https URL (RFC 8058 §3.1). ``extra_headers`` are ``(name, free text)`` pairs.
    ``text`` and ``html`` are strings, or bodies already encoded (see :class:`Body`).

    Raises :class:`PermanentDeliveryError` when ``to`` cannot be written as an address (a
    quoted or non-ASCII local part, say), and ValueError for any other unusable argument.
    """
    try:
        to_address = _addr_spec(to)
    except ValueError as exc:
        raise PermanentDeliveryError(to, str(exc)) from exc
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if not _MESSAGE_ID.fullmatch(message_id) or not message_id.isascii():
        raise ValueError(f"not a Message-ID: {message_id!r}")
    headers = [
        _from_line(sender),
        _fold("To", _mailbox_parts("To", to_name, to_address)),
        _subject_line(subject),
        _date_line(date, date.utcoffset()),
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        _list_id_line(list_id),
        *_unsubscribe_lines(unsubscribe_url, unsubscribe_mailto),
    ]
    # RFC 3834: no auto-replies (vacation notices) to an automatic message.
    headers += ["Auto-Submitted: auto-generated", "Precedence: bulk"]
    for name, value in extra_headers:
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _OWN:
            raise ValueError(f"unusable extra header name: {name!r}")
        headers.append(_fold(name, _unstructured(name, value)))
    # "=_" never occurs in quoted-printable or base64 output, so this boundary cannot
    # appear in a body (RFC 2045 §6.7: "=" is always followed by two hex digits or CRLF).
    boundary = "=_" + hashlib.sha256(message_id.encode("ascii")).hexdigest()[:24]
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')

    delimiter = f"{CRLF}--{boundary}{CRLF}".encode("ascii")
    return b"".join(
        [
            CRLF.join(headers).encode("ascii"),
            f"{CRLF}{CRLF}--{boundary}{CRLF}".encode("ascii"),
            *_part("text/plain", text),
            delimiter,
            *_part("text/html", html),
            f"{CRLF}--{boundary}--{CRLF}".encode("ascii"),
        ]
    )
