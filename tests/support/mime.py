"""Checks on encoded message bodies."""

from __future__ import annotations

from email.message import EmailMessage


def dot_lines(data: bytes) -> bool:
    """Whether a line of ``data`` (CRLF line ends) starts with ``.`` (SMTP would have to
    dot-stuff it)."""
    return data.startswith(b".") or b"\r\n." in data


def body_of(message: EmailMessage, subtype: str) -> str:
    """The decoded text of ``message``'s ``text/<subtype>`` part; fails the test without one."""
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content
