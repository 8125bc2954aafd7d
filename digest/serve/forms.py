"""The subscribe and manage form: its fields as typed, read from a request, checked into a
subscriber (one error message per field), and filled from a subscriber.

What the web may store is plain text: control characters (ESC, BEL, NUL...), bidi overrides
and line separators in a name or a query are refused with a form error, never stored, and
an address the mail server cannot take (non-ASCII before the ``@``) is a form error too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, fields, replace
from typing import Any

from starlette.requests import Request

from digest.config import Config, Invalid, normalise_address
from digest.errors import QueryError
from digest.models import ABSTRACT_MODES, Subscriber
from digest.schedule import Schedule, ScheduleError
from digest.select import validate as validate_query
from digest.serve.scheduler import schedule_of

MAX_QUERIES = 20
MAX_QUERY_LENGTH = 300
MAX_NAME_LENGTH = 100
#: Invisible characters that reorder what is shown (Unicode bidi controls: ALM, LRM, RLM,
#: the embeddings and overrides, the isolates) and the line and paragraph separators.
INVISIBLE = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SEPARATORS = frozenset("\u2028\u2029")


@dataclass
class Form:
    """The subscribe / manage form, as typed, with one error message per field."""

    email: str = ""
    name: str = ""
    keywords: str = ""
    exclude: str = ""
    send_at: str = "08:00"
    timezone: str = "UTC"
    frequency: str = "daily"
    weekday: str = "mon"
    days: tuple[str, ...] = ()
    abstract: str = ""  #: one of ABSTRACT_MODES; empty: the configuration's default
    errors: dict[str, str] | None = None


def lines(text: str) -> tuple[str, ...]:
    return tuple(q.strip() for q in text.replace("\r", "\n").split("\n") if q.strip())


def unsafe_character(text: str, allowed: str = "") -> str | None:
    """What is wrong with the first character of ``text`` a person cannot see or that acts
    on a terminal (other than those in ``allowed``), or None: ``"a control character
    (U+001B)"``, ``"an invisible direction mark (U+202E)"``."""
    for char in text:
        if char in allowed:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or char in SEPARATORS:
            return f"a control character (U+{ord(char):04X})"
        if char in INVISIBLE:
            return f"an invisible direction mark (U+{ord(char):04X})"
    return None


def _name(form: Form, errors: dict[str, str]) -> str | None:
    name = form.name.strip()
    problem = unsafe_character(name)
    if problem:
        errors["name"] = f"a name cannot hold {problem}"
    elif len(name) > MAX_NAME_LENGTH:
        errors["name"] = f"a name is at most {MAX_NAME_LENGTH} characters"
    return name or None


def _queries(form: Form, name: str, errors: dict[str, str]) -> tuple[str, ...]:
    found = lines(getattr(form, name))
    if len(found) > MAX_QUERIES:
        errors[name] = f"at most {MAX_QUERIES} queries, one per line"
    for n, q in enumerate(found, 1):
        problem = unsafe_character(q, allowed="\t")
        if problem:
            errors[name] = f"query {n} holds {problem}: type it again without it"
            break
        if len(q) > MAX_QUERY_LENGTH:
            errors[name] = f"a query is at most {MAX_QUERY_LENGTH} characters"
            break
        try:
            validate_query(q)
        except QueryError as exc:
            errors[name] = f"“{q}”: {exc.reason} (at character {exc.position + 1})"
            break
    return found


def check_form(form: Form, *, need_email: bool) -> tuple[Subscriber | None, dict[str, str]]:
    """The subscriber the form describes, or the errors by field."""
    errors: dict[str, str] = {}
    email = ""
    if need_email:
        try:
            email = normalise_address(form.email)
        except Invalid as exc:  # also an address with non-ASCII before the @ (no SMTPUTF8)
            errors["email"] = str(exc)
    name = _name(form, errors)
    keywords = _queries(form, "keywords", errors)
    exclude = _queries(form, "exclude", errors)
    abstract = form.abstract.strip() or None
    if abstract is not None and abstract not in ABSTRACT_MODES:
        errors["abstract"] = "choose one of " + ", ".join(ABSTRACT_MODES)
    try:
        sched = Schedule.make(form.send_at, form.timezone, form.frequency, form.weekday, form.days)
    except ScheduleError as exc:
        errors[exc.field] = exc.message
        sched = None
    if errors or sched is None:
        return None, errors
    sub = Subscriber(
        email=email or "unknown@invalid",
        name=name,
        keywords=keywords,
        exclude=exclude,
        abstract=abstract,
        send_at=sched.send_at_text,
        timezone=sched.timezone,
        frequency=sched.frequency,
        weekday=sched.weekday,
        days=sched.days or None,
    )
    return sub, errors


async def read_form(request: Request, shown: Form) -> tuple[Form, str]:
    """The form as posted, and its CSRF field. A field the POST does not carry keeps its
    value in ``shown`` (what the page showed): a page without a field never erases it. The
    day boxes count as posted when the schedule's other fields are (an unticked box is not
    sent)."""
    data = await request.form()
    values: dict[str, Any] = {}
    for field in fields(Form):
        value = data.get(field.name)
        if isinstance(value, str) and field.name not in ("days", "errors"):
            values[field.name] = value[:5000]
    if "frequency" in data:
        values["days"] = tuple(v for v in data.getlist("days") if isinstance(v, str))[:7]
    form = replace(shown, errors=None, **values)
    csrf = data.get("csrf", "")
    return form, csrf if isinstance(csrf, str) else ""


def form_of(config: Config, sub: Subscriber) -> Form:
    sched = schedule_of(config, sub)
    return Form(
        email=sub.email,
        name=sub.name or "",
        keywords="\n".join(sub.keywords),
        exclude="\n".join(sub.exclude),
        send_at=sched.send_at_text,
        timezone=sched.timezone,
        frequency=sched.frequency,
        weekday=sched.weekday,
        days=sched.days,
        abstract=sub.abstract or config.mail.abstract,
    )
