"""The log lines of ``digest serve``: one line per event as ``key=value`` pairs (logfmt, as
journalctl, Loki, Vector and the like read it), never colours, and the redaction that keeps
tokens out of logged URLs.

A record's ``fields`` (``log.info("request", extra={"fields": {...}})``) become pairs after
``msg``; a traceback becomes one quoted ``exc`` value, so an event stays on one line. The
message and the traceback are scrubbed of secret-looking parameters whoever logged them.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"
#: The query parameters whose values are logged: the preview's; no secret rides in them.
#: Every other parameter's value (``token=`` of the confirm, manage and unsubscribe links,
#: and any parameter added later) is logged as ``[redacted]``.
SAFE_PARAMS = frozenset({"days", "keywords", "exclude"})
#: A secret-looking parameter or a private feed's token in free text (a message, a
#: traceback): redacted there too, whatever logged it.
_SECRET_IN_TEXT = re.compile(
    r"(?i)\b([\w-]*(?:token|secret|passw(?:or)?d|signature|auth)[\w-]*=|[\w-]*(?:key|sig)=)"
    r"[^&\s\"'<>]+"
    r"|(/feeds/)[\w-]+"
)
#: A value logged bare; anything else is quoted (JSON escapes, ASCII only).
_BARE = re.compile(r"[A-Za-z0-9_.,:/@+\-\[\]]+")


def redact(path: str, query: str) -> str:
    """The request target as logged: a private feed's token in the path and the value of
    every query parameter but :data:`SAFE_PARAMS` replaced by ``[redacted]``.

    >>> redact("/unsubscribe", "token=eyJ.abc&x=1")
    '/unsubscribe?token=[redacted]&x=[redacted]'
    >>> redact("/feeds/AbC123.atom", "")
    '/feeds/[redacted].atom'
    """
    if path.startswith("/feeds/"):
        kind = re.search(r"\.[A-Za-z]{1,8}$", path)
        path = "/feeds/" + REDACTED + (kind.group(0) if kind else "")
    if not query:
        return path
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and name not in SAFE_PARAMS:
            value = REDACTED
        parts.append(f"{name}{eq}{value}")
    return f"{path}?{'&'.join(parts)}"


def scrub(text: str) -> str:
    """``text`` with the values of secret-looking parameters (``token=``, ``api_key=``...)
    and private feed tokens replaced by ``[redacted]``.

    >>> scrub("GET https://x/unsubscribe?token=eyJ.abc failed")
    'GET https://x/unsubscribe?token=[redacted] failed'
    """
    return _SECRET_IN_TEXT.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)


def pair(key: str, value: Any) -> str:
    """``key=value``, the value quoted when it holds anything but plain characters."""
    text = "" if value is None else str(value)
    if _BARE.fullmatch(text):
        return f"{key}={text}"
    return f"{key}={json.dumps(text)}"


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg=…`` then the record's ``fields``, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        pairs = [
            pair("ts", when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"),
            pair("level", record.levelname.lower()),
            pair("logger", record.name),
            pair("msg", scrub(record.getMessage())),
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            pairs.extend(pair(str(k), v) for k, v in fields.items())
        if record.exc_info:
            pairs.append(pair("exc", scrub(self.formatException(record.exc_info))))
        return " ".join(pairs)


def use_logfmt(level: int) -> None:
    """What ``digest serve`` logs: every handler of the root logger writes logfmt; our own
    loggers (``digest.*``: a line per request and per scheduled pass) log at INFO or below
    whatever ``-v`` says; other libraries keep ``level``."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(LogfmtFormatter())
    ours = logging.getLogger("digest")
    ours.setLevel(min(level, logging.INFO))
