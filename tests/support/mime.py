"""Checks on encoded message bodies."""

from __future__ import annotations


def dot_lines(data: bytes) -> bool:
    """Whether a line of ``data`` (CRLF line ends) starts with ``.`` (SMTP would have to
    dot-stuff it)."""
    return data.startswith(b".") or b"\r\n." in data
