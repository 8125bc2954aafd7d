"""Signed link tokens: the signature is RFC 2104's HMAC-SHA256 of the purpose and value
(truncated), whatever the secret's length, and verifies only for its purpose."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from digest.compose import tokens


def _reference(secret: bytes, purpose: str, value: str) -> str:
    raw = value.encode("utf-8")
    mac = hmac.new(secret, purpose.encode() + b"\0" + raw, hashlib.sha256).digest()[:18]
    b64 = [base64.urlsafe_b64encode(x).rstrip(b"=").decode() for x in (raw, mac)]
    return ".".join(b64)


@pytest.mark.parametrize("size", [0, 1, 32, 63, 64, 65, 200])
@pytest.mark.parametrize("purpose", ["feedback", "unsubscribe", ""])
def test_a_token_is_the_hmac_of_its_purpose_and_value(size: int, purpose: str) -> None:
    secret = bytes(range(256))[:size]
    for value in ("7", "123:2511.00001", "x" * 100, "Zoë:ü"):
        token = tokens.sign(secret, purpose, value)
        assert token == _reference(secret, purpose, value)
        assert tokens.verify(secret, purpose, token) == value
        with pytest.raises(tokens.BadToken):
            tokens.verify(secret, purpose + "x", token)
        with pytest.raises(tokens.BadToken):
            tokens.verify(secret + b"x", purpose, token)
