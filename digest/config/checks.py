"""Value checks: each turns a raw TOML value into a setting's value or raises :class:`Invalid`.

The building blocks of the declarations in :mod:`digest.config.settings` and
:mod:`digest.config.subscribers`; ``normalise_address`` also serves the CLI and the web app.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import QueryError
from digest.schedule import ScheduleError, parse_send_at
from digest.select import validate as validate_query


class Invalid(Exception):
    """A value does not fit its setting; the message says what was expected.

    ``quotes_value``: the message already names the value (or the part of it that is
    wrong, as a bad query of a list), so whoever reports it does not add it again.
    """

    def __init__(self, message: str, *, quotes_value: bool = False) -> None:
        super().__init__(message)
        self.quotes_value = quotes_value


Check = Callable[[Any], Any]


def text(*, empty: bool = False) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("expected a string")
        if not empty and not value.strip():
            raise Invalid("expected a non-empty string")
        return value

    return check


def integer(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"expected an integer {low}-{high}")
        return value

    return check


def number(low: float, high: float) -> Check:
    def check(value: Any) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not low <= value <= high:
            raise Invalid(f"expected a number {low:g}-{high:g}")
        return float(value)

    return check


def boolean() -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("expected true or false")
        return value

    return check


def choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise Invalid("expected one of " + ", ".join(f'"{o}"' for o in options))
        return str(value)

    return check


def workers() -> Check:
    def check(value: Any) -> int | str:
        if value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
            raise Invalid('expected "auto" or an integer 1-64')
        return value

    return check


def zone() -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise Invalid('expected an IANA time zone name such as "Europe/Paris"')
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise Invalid('expected an IANA time zone name such as "Europe/Paris"') from exc
        return value

    return check


def http_url(*, strip: bool = True) -> Check:
    """A URL requests go to: http or https, a host (and a valid port), no space or control
    character. Returned without its trailing ``/`` (with ``strip``), else as given."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise Invalid("expected an http:// or https:// URL")
        for char in value:
            if char.isspace() or not char.isprintable():
                what = "a space" if char.isspace() else _named(char)
                raise Invalid(f"expected a URL without {what}")
        _host_and_port(_split(value))
        return value.rstrip("/") if strip else value

    return check


_NO_HOST = "expected a URL with a host, such as https://digest.example.org"


def _split(value: str) -> SplitResult:
    try:
        return urlsplit(value)
    except ValueError:  # a bracket that opens no IP address: "http://[::1", "http://[x]"
        raise Invalid(_NO_HOST) from None


def _host_and_port(parts: SplitResult) -> None:
    if not parts.hostname:
        raise Invalid(_NO_HOST)
    try:
        parts.port  # noqa: B018 (raises ValueError when out of range)
    except ValueError:
        raise Invalid("expected a URL with a port 1-65535") from None


def base_url() -> Check:
    """The site's public address, which every link in emails and feeds starts with: http or
    https, a host, nothing a link or an attribute would have to escape, no query or fragment
    (paths are appended to it). Returned without its trailing ``/``."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise Invalid("expected an http:// or https:// URL")
        for char in value:
            if char in "\"'<>`\\" or char.isspace() or not char.isprintable():
                what = "a space" if char.isspace() else _named(char)
                raise Invalid(f"expected a URL without {what}")
        parts = _split(value)
        if parts.query or value.endswith("?"):
            raise Invalid("expected a URL without a query (?...): paths are added to it")
        if parts.fragment or "#" in value:
            raise Invalid("expected a URL without a fragment (#...): paths are added to it")
        if parts.username is not None or parts.password is not None:
            raise Invalid("expected a URL without a user name or password")
        _host_and_port(parts)
        return value.rstrip("/")

    return check


def _named(char: str) -> str:
    if char in "\"'`":
        return f"quotes ({char})"
    if char.isprintable():
        return char
    return f"a control character ({char!r})"


def address() -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("expected an email address")
        return normalise_address(value)

    return check


def mailbox() -> Check:
    """A From header value: ``Name <addr@example.org>`` or a bare address."""

    def check(value: Any) -> str:
        from email.utils import parseaddr

        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise Invalid('expected "Name <address@example.org>"')
        _, addr = parseaddr(value)
        normalise_address(addr)
        return value.strip()

    return check


def queries() -> Check:
    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(q, str) for q in value):
            raise Invalid("expected a list of query strings")
        for q in value:
            try:
                validate_query(q)
            except QueryError as exc:
                raise Invalid(
                    f"invalid query {json.dumps(q, ensure_ascii=False)} at position"
                    f" {exc.position}: {exc.reason}",
                    quotes_value=True,
                ) from exc
        return tuple(value)

    return check


#: The value a :mod:`digest.schedule` message quotes (Python's spelling): the table adds the
#: value as the config file spells it, so it is said once.
_QUOTED_VALUE = re.compile(r",? got .*$", re.DOTALL)


def schedule_field(convert: Callable[[Any], Any]) -> Check:
    """A check built from one of :mod:`digest.schedule`'s validators; its message says
    what is expected, not the value (the caller names it)."""

    def check(value: Any) -> Any:
        try:
            return convert(value)
        except ScheduleError as exc:
            raise Invalid(_QUOTED_VALUE.sub("", exc.message)) from exc

    return check


def time_of_day() -> Check:
    return schedule_field(lambda v: parse_send_at(v).strftime("%H:%M"))


def optional(check: Check) -> Check:
    def inner(value: Any) -> Any:
        return None if value is None else check(value)

    return inner


#: Why an address with letters outside ASCII before the @ (``josé@example.org``) is refused.
NON_ASCII_LOCAL = (
    "letters outside ASCII before the @ cannot be delivered to from here (that needs"
    " SMTPUTF8, RFC 6531, which few mail servers offer): use another address"
)


def normalise_address(value: str, *, deliverable: bool = True) -> str:
    """A checked, normalised email address (domain lower-cased); raises :class:`Invalid`.

    With ``deliverable`` (an address to send to: a new subscriber, ``send --to``), the
    part before the @ must be ASCII (:data:`NON_ASCII_LOCAL`): digests are sent without
    SMTPUTF8, so such an address would be a subscriber no digest can reach. Without (an
    address to look up: one an older version stored), any well-formed address.
    """
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"expected an email address ({exc})") from exc
    if deliverable and not result.local_part.isascii():
        raise Invalid(NON_ASCII_LOCAL)
    # Local parts are case-sensitive in theory, never in practice: one person, one row.
    return str(result.normalized).lower()


def header_value() -> Check:
    """A value for an HTTP header such as ``User-Agent``: printable ASCII, one line."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid("expected a non-empty string")
        if not all(" " <= char <= "~" for char in value) or len(value) > 500:
            raise Invalid("expected one line of printable ASCII, at most 500 characters")
        return value.strip()

    return check
