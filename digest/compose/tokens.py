"""Signed tokens for links in emails (unsubscribe, manage) and random feed tokens.

A signed token is ``<value>.<signature>``, both URL-safe base64, where the signature is an
HMAC-SHA256 over the purpose and the value. A token made for one purpose never verifies
for another, and verification compares in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from digest.errors import DigestError

if TYPE_CHECKING:
    from hashlib import _Hash


class BadToken(DigestError):
    """A token is malformed, forged, or made for another purpose."""


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: HMAC-SHA256 (RFC 2104) of a secret and purpose, as its inner hash fed the padded key and
#: the purpose and its outer hash fed the padded key, by (secret, purpose): each signature
#: copies the two. An email signs ~30 feedback tokens; ``hmac``'s own copy took ~9 µs a
#: signature (OpenSSL's HMAC context), two SHA-256 copies take ~3.
_keyed: dict[tuple[bytes, str], tuple[_Hash, _Hash]] = {}
_BLOCK = 64  # SHA-256's block size


def _signature(secret: bytes, purpose: str, value: bytes) -> bytes:
    keyed = _keyed.get((secret, purpose))
    if keyed is None:
        if len(_keyed) >= 64:
            _keyed.clear()
        key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
        key = key.ljust(_BLOCK, b"\0")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + purpose.encode() + b"\0")
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        keyed = _keyed[secret, purpose] = (inner, outer)
    inner, outer = keyed[0].copy(), keyed[1].copy()
    inner.update(value)
    outer.update(inner.digest())
    return outer.digest()[:18]


def sign(secret: bytes, purpose: str, value: str) -> str:
    """A URL-safe token carrying ``value``, good only for ``purpose``."""
    raw = value.encode("utf-8")
    return f"{_b64(raw)}.{_b64(_signature(secret, purpose, raw))}"


def verify(secret: bytes, purpose: str, token: str) -> str:
    """The value carried by ``token``; raises :class:`BadToken` unless it was signed for
    ``purpose`` with ``secret``."""
    try:
        value_part, sig_part = token.split(".")
        raw = _unb64(value_part)
        sig = _unb64(sig_part)
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadToken("malformed token") from exc
    if not hmac.compare_digest(sig, _signature(secret, purpose, raw)):
        raise BadToken("invalid token")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadToken("malformed token") from exc


def random_token() -> str:
    """An unguessable token (192 bits) for private feed URLs."""
    return secrets.token_urlsafe(24)


def new_secret() -> str:
    """A fresh secret suitable for ``DIGEST_SECRET``."""
    return secrets.token_urlsafe(32)
