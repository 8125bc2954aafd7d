"""What every command shares: the state (config and store, loaded once), the one translation
of errors into words and exit codes, the checks of common options, the words for states and
:func:`shown`, through which every value the CLI prints passes (names, queries, titles, errors
quoting them): no control character reaches the terminal raw.

Exit codes: 0 done; 1 the run failed (message on stderr); 2 usage or config error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from typing import Any, NoReturn, TypeVar

import click

from digest.config import Config, Invalid, find_config, load, normalise_address
from digest.errors import ConfigError, DigestError, QueryError, RosterError
from digest.models import Subscriber
from digest.select import validate as validate_query
from digest.store import Store

EXIT_FAILED = 1
EXIT_USAGE = 2
T = TypeVar("T")

#: What a terminal must never get raw from a value: C0 controls (ESC starts escape sequences
#: that move the cursor, retitle the window or rewrite what was printed; BEL, NUL), DEL, C1
#: controls (0x9b is a one-byte ESC [), the bidirectional marks, embeddings, overrides and
#: isolates that reorder what is shown ("Trojan Source", CVE-2021-42574), the line and
#: paragraph separators, and lone surrogates (not text at all).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ud800-\udfff]"
)


def shown(value: object) -> str:
    """``value`` as text to print: each character of :data:`_UNSAFE` written as a visible
    escape (``\\x1b``, ``\\x07``, ``\\u202e``), all else as it is (a backslash too).

    Every value from outside the program that the CLI prints (subscribers' names and
    queries, papers, servers' replies, errors quoting a value) goes through it; the CLI's
    own line breaks and tabs are added around the values, never inside them.
    """
    return _UNSAFE.sub(_escape, str(value))


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown_lines(text: str) -> str:
    """:func:`shown` for a message of several lines: its line breaks stay."""
    return "\n".join(shown(line) for line in text.split("\n"))


class ShownFormatter(logging.Formatter):
    """Log lines for a terminal: each record's text (a server's reply, a listing's warning)
    passed through :func:`shown`, its own line breaks (a traceback's) kept."""

    def format(self, record: logging.LogRecord) -> str:
        return shown_lines(super().format(record))


def fail(error: DigestError) -> NoReturn:
    """Say ``error`` (and its hint) on stderr and exit: 2 for a user mistake, else 1.

    The message's own lines stay lines; anything else unsafe in it is :func:`shown`.
    """
    usage = isinstance(error, ConfigError | QueryError | RosterError)
    code = EXIT_USAGE if usage else EXIT_FAILED
    click.echo(f"error: {shown_lines(str(error))}", err=True)
    if error.hint:
        click.echo(f"hint: {shown_lines(error.hint)}", err=True)
    sys.exit(code)


def guard(fn: Callable[[], T]) -> T:
    """``fn()``, with a :class:`DigestError` turned into words and an exit code."""
    try:
        return fn()
    except DigestError as exc:
        fail(exc)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end, guarded like :func:`guard`."""
    return guard(lambda: asyncio.run(coro))


class State:
    """The ``--config`` given; the config and the store are opened when a command asks."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    def config(self) -> Config:
        if self._config is None:
            path = find_config(self.config_path, os.environ)
            self._config = guard(lambda: load(path))
        return self._config

    def store(self) -> Store:
        cfg = self.config()
        return guard(lambda: Store(cfg.database))


def parse_date(value: str | None, cfg: Config) -> date:
    """A ``--date`` value; today in the configured zone when not given."""
    if value is None:
        return datetime.now(cfg.zone).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date YYYY-MM-DD, got {value!r}") from None


def check_queries(option: str, queries: Sequence[str]) -> tuple[str, ...]:
    """The queries given to ``option``, each checked; a bad one is a usage error."""
    for q in queries:
        try:
            validate_query(q)
        except QueryError as exc:
            hint = f"\nhint: {exc.hint}" if exc.hint else ""
            raise click.BadParameter(shown_lines(str(exc) + hint), param_hint=option) from None
    return tuple(queries)


def check_address(value: str, *, deliverable: bool = True) -> str:
    """An email address given on the command line, normalised; a bad one is a usage error.

    ``deliverable``: one to send to, so its local part must be ASCII (see
    :func:`digest.config.normalise_address`); else one to look up, which an older version
    may have stored with letters outside ASCII before the @.
    """
    try:
        return normalise_address(value, deliverable=deliverable)
    except Invalid as exc:
        raise click.BadParameter(shown(f"{value!r}: {exc}")) from None


def at(moment: datetime | None) -> str:
    """``2026-01-05 07:00 UTC``, or ``?`` for no moment."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else "?"


def status_text(sub: Subscriber) -> str:
    """``active``, ``unsubscribed (removed)``, ``suspended (bounced: 3 in a row)``..."""
    if sub.status == "active":
        return "active"
    if sub.status_reason == "bounced":
        return f"{sub.status} (bounced: {sub.hard_bounces} in a row)"
    return shown(f"{sub.status} ({sub.status_reason})" if sub.status_reason else sub.status)
