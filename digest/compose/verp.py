"""VERP addresses: the envelope sender ``bounces+<token>@example.org`` of each digest, and the
``List-Unsubscribe`` mailto address, each carrying a signed token that names what it is for.

Pure: the secret is an argument. A token is lowercase base32 (letters and 2-7), because mail
servers may fold the case of a local part; it holds a kind byte, the value and an HMAC-SHA256
of both truncated to 8 bytes, so a stranger cannot make one that names a delivery or a
subscriber (a delivery token is 40 characters, an unsubscribe token 28: with the 8 of
``bounces+`` they stay within the 64 an address's local part may have, RFC 5321 §4.5.3.1.1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["delivery", "unsubscribe"]
_KIND_BYTES: dict[Kind, bytes] = {"delivery": b"d", "unsubscribe": b"u"}
_SIGNATURE = 8
#: The longest local part a bounce address may have: 64 less ``+`` and a delivery token.
MAX_BOUNCE_LOCAL = 64 - 1 - 40
#: A token as it appears in an address or a subject (lowercase or not: some servers fold).
TOKEN_PATTERN = r"[A-Za-z2-7]{24,48}"


@dataclass(frozen=True)
class TokenRef:
    """What a verified token names: a delivery (its id) or a subscriber (their id)."""

    kind: Kind
    delivery_id: str | None = None
    subscriber_id: int | None = None


def _sign(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, b"verp\0" + body, hashlib.sha256).digest()[:_SIGNATURE]


def _encode(secret: bytes, kind: Kind, value: bytes) -> str:
    body = _KIND_BYTES[kind] + value
    return base64.b32encode(body + _sign(secret, body)).decode("ascii").rstrip("=").lower()


def delivery_token(secret: bytes, delivery_id: str) -> str | None:
    """The token naming delivery ``delivery_id`` (32 hex digits, as the outbox makes them);
    None for an id of another shape (it then goes out without a token)."""
    if not re.fullmatch(r"[0-9a-f]{32}", delivery_id):
        return None
    return _encode(secret, "delivery", bytes.fromhex(delivery_id))


def unsubscribe_token(secret: bytes, subscriber_id: int) -> str:
    """The token naming subscriber ``subscriber_id`` in the unsubscribe mailto address."""
    return _encode(secret, "unsubscribe", subscriber_id.to_bytes(8, "big"))


def read_token(secret: bytes, token: str) -> TokenRef | None:
    """What ``token`` names, or None when it is malformed or not signed with ``secret``."""
    text = token.strip().upper()
    if not re.fullmatch(TOKEN_PATTERN, text):
        return None
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    body, signature = raw[:-_SIGNATURE], raw[-_SIGNATURE:]
    if len(body) < 2 or not hmac.compare_digest(signature, _sign(secret, body)):
        return None
    kind, value = body[:1], body[1:]
    if kind == b"d" and len(value) == 16:
        return TokenRef("delivery", delivery_id=value.hex())
    if kind == b"u" and len(value) == 8:
        return TokenRef("unsubscribe", subscriber_id=int.from_bytes(value, "big"))
    return None


def verp_address(bounce_address: str, token: str | None) -> str:
    """``local+token@domain`` from ``local@domain``; the bounce address itself for no token."""
    if token is None:
        return bounce_address
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{token}@{domain}"


def tokens_in(text: str, bounce_address: str) -> list[str]:
    """Every token of a ``local+token@domain`` address of ``bounce_address`` in ``text``
    (headers, a quoted original, a bounce's prose), in order, without repeats; the case of
    the local part and the domain does not matter."""
    local, _, domain = bounce_address.rpartition("@")
    pattern = rf"(?<![\w.+-]){re.escape(local)}\+({TOKEN_PATTERN})@{re.escape(domain)}(?![\w-])"
    found: list[str] = []
    for match in re.finditer(pattern, text, re.IGNORECASE):
        token = match.group(1).lower()
        if token not in found:
            found.append(token)
    return found
