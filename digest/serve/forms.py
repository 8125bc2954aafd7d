"""The subscribe and manage form: its fields as typed, read from a request, checked into a
subscriber (one error message per field), and filled from a subscriber."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from digest.config import Config, Invalid, normalise_address
from digest.errors import QueryError
from digest.models import Subscriber
from digest.schedule import Schedule, ScheduleError
from digest.select import validate as validate_query
from digest.serve.scheduler import schedule_of

MAX_QUERIES = 20
MAX_QUERY_LENGTH = 300


@dataclass
class Form:
    """The subscribe / manage form, as typed, with one error message per field."""

    email: str = ""
    keywords: str = ""
    exclude: str = ""
    send_at: str = "08:00"
    timezone: str = "UTC"
    frequency: str = "daily"
    weekday: str = "mon"
    days: tuple[str, ...] = ()
    errors: dict[str, str] | None = None


def lines(text: str) -> tuple[str, ...]:
    return tuple(q.strip() for q in text.replace("\r", "\n").split("\n") if q.strip())


def _queries(form: Form, name: str, errors: dict[str, str]) -> tuple[str, ...]:
    found = lines(getattr(form, name))
    if len(found) > MAX_QUERIES:
        errors[name] = f"at most {MAX_QUERIES} queries, one per line"
    for q in found:
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
        except Invalid as exc:
            errors["email"] = str(exc)
    keywords = _queries(form, "keywords", errors)
    exclude = _queries(form, "exclude", errors)
    try:
        sched = Schedule.make(form.send_at, form.timezone, form.frequency, form.weekday, form.days)
    except ScheduleError as exc:
        errors[exc.field] = exc.message
        sched = None
    if errors or sched is None:
        return None, errors
    sub = Subscriber(
        email=email or "unknown@invalid",
        keywords=keywords,
        exclude=exclude,
        send_at=sched.send_at_text,
        timezone=sched.timezone,
        frequency=sched.frequency,
        weekday=sched.weekday,
        days=sched.days or None,
    )
    return sub, errors


async def read_form(request: Request, timezone: str) -> tuple[Form, str]:
    data = await request.form()

    def get(name: str, default: str = "") -> str:
        value = data.get(name, default)
        return value[:5000] if isinstance(value, str) else default

    form = Form(
        email=get("email"),
        keywords=get("keywords"),
        exclude=get("exclude"),
        send_at=get("send_at", "08:00"),
        timezone=get("timezone", timezone),
        frequency=get("frequency", "daily"),
        weekday=get("weekday", "mon"),
        days=tuple(v for v in data.getlist("days") if isinstance(v, str))[:7],
    )
    return form, get("csrf")


def form_of(config: Config, sub: Subscriber) -> Form:
    sched = schedule_of(config, sub)
    return Form(
        email=sub.email,
        keywords="\n".join(sub.keywords),
        exclude="\n".join(sub.exclude),
        send_at=sched.send_at_text,
        timezone=sched.timezone,
        frequency=sched.frequency,
        weekday=sched.weekday,
        days=sched.days,
    )
