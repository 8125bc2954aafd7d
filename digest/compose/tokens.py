"""Signed tokens for links in emails (unsubscribe, manage) and random feed tokens.

A signed token is ``<value>.<signature>``, both URL-safe base64, where the signature is an
HMAC-SHA256 over the purpose and the value. A token made for one purpose never verifies
for another, and verification compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from digest.errors import DigestError


class BadToken(DigestError):
    """A token is malformed, forged, or made for another purpose."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: The HMAC keyed with a secret and fed its purpose, by (secret, purpose): each signature
#: copies it (an email signs ~30 feedback tokens; keying HMAC-SHA256 was half the cost).
_keyed: dict[tuple[bytes, str], hmac.HMAC] = {}


def _signature(secret: bytes, purpose: str, value: bytes) -> bytes:
    keyed = _keyed.get((secret, purpose))
    if keyed is None:
        if len(_keyed) >= 64:
            _keyed.clear()
        keyed = _keyed[secret, purpose] = hmac.new(secret, purpose.encode() + b"\0", hashlib.sha256)
    mac = keyed.copy()
    mac.update(value)
    return mac.digest()[:18]


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
