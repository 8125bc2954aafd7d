"""When each subscriber's digest is due: pure time arithmetic over a subscriber's schedule.

A schedule is a wall-clock time (``send_at``) in an IANA zone, every day, on chosen days
(``days``), or once a week (``frequency = "weekly"`` on ``weekday``). Times are computed in
the subscriber's zone and stored in UTC, so daylight-saving changes move the UTC instant and
never the local hour. Across a DST gap (02:30 on a spring-forward night) the send happens at
the same distance after the gap (03:30); across an overlap (01:30 twice in autumn) it
happens once, at the first 01:30.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FREQUENCIES = ("daily", "weekly")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleError(ValueError):
    """A schedule field has a value that cannot be used; the message says what is expected."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_send_at(value: object) -> time:
    """``"08:00"`` → ``time(8, 0)``; raises :class:`ScheduleError`."""
    if not isinstance(value, str) or not (m := _HHMM.match(value.strip())):
        raise ScheduleError(
            "send_at", f'expected a time of day "HH:MM" (24-hour, e.g. "08:00"), got {value!r}'
        )
    return time(int(m.group(1)), int(m.group(2)))


def check_zone(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError("timezone", 'expected an IANA time zone name such as "Europe/Paris"')
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        close = zone_like(value.strip())
        hint = f"did you mean {close}?" if close else 'expected an IANA name such as "Europe/Paris"'
        raise ScheduleError("timezone", f"unknown time zone {value!r}: {hint}") from exc
    return value.strip()


@functools.cache
def _zones() -> dict[str, str]:
    """The IANA zone names known here, by their lower-case spelling."""
    return {name.lower(): name for name in available_timezones() if "/" in name or name == "UTC"}


def zone_like(typed: str) -> str | None:
    """The zone name ``typed`` most likely meant (a typo, another case, spaces for
    underscores, the city alone), or None: ``"Europe/Berln"`` → ``"Europe/Berlin"``,
    ``"berlin"`` → ``"Europe/Berlin"``."""
    zones = _zones()
    key = typed.strip().lower().replace(" ", "_")
    if key in zones:
        return zones[key]
    cities = {name.rsplit("/", 1)[-1]: name for name in sorted(zones, reverse=True)}
    close = difflib.get_close_matches(key, zones, n=1, cutoff=0.75)
    if not close and "/" not in key:
        close = [cities[c] for c in difflib.get_close_matches(key, cities, n=1, cutoff=0.75)]
    return zones[close[0]] if close else None


def check_weekday(value: object, field: str = "weekday") -> str:
    """``"mon"``, ``"Monday"``... → ``"mon"``; raises :class:`ScheduleError`."""
    text = value.strip().lower() if isinstance(value, str) else ""
    for name, full in zip(WEEKDAYS, _FULL_NAMES, strict=True):
        if text in (name, full):
            return name
    raise ScheduleError(field, f"expected one of {', '.join(WEEKDAYS)}, got {value!r}")


def check_days(value: object) -> tuple[str, ...]:
    """A list of weekdays (``["mon", "wed"]``, or a comma-separated string); empty: every day."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, list | tuple):
        raise ScheduleError(
            "days", f'expected a list of weekdays like ["mon", "thu"], got {value!r}'
        )
    days = {check_weekday(v, "days") for v in value}
    return tuple(d for d in WEEKDAYS if d in days)


def check_frequency(value: object) -> str:
    if value not in FREQUENCIES:
        raise ScheduleError("frequency", f'expected "daily" or "weekly", got {value!r}')
    return str(value)


@dataclass(frozen=True)
class Schedule:
    """When one subscriber wants mail. Build it with :meth:`make` to validate the fields."""

    send_at: time = time(8, 0)
    timezone: str = "UTC"
    frequency: str = "daily"
    weekday: str = "mon"  # for weekly
    days: tuple[str, ...] = ()  # for daily: only these days; empty: every day

    @classmethod
    def make(
        cls,
        send_at: object = "08:00",
        timezone: object = "UTC",
        frequency: object = "daily",
        weekday: object = "mon",
        days: object = None,
    ) -> Schedule:
        """A validated schedule; raises :class:`ScheduleError` naming the bad field."""
        return cls(
            send_at=parse_send_at(send_at) if not isinstance(send_at, time) else send_at,
            timezone=check_zone(timezone),
            frequency=check_frequency(frequency),
            weekday=check_weekday(weekday),
            days=check_days(days),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def send_at_text(self) -> str:
        return self.send_at.strftime("%H:%M")

    def period(self) -> timedelta:
        """The longest time between two sends: what one digest normally covers."""
        if self.frequency == "weekly":
            return timedelta(days=7)
        if not self.days:
            return timedelta(days=1)
        idx = sorted(WEEKDAYS.index(d) for d in self.days)
        gaps = [(b - a) % 7 or 7 for a, b in zip(idx, idx[1:] + idx[:1], strict=True)]
        return timedelta(days=max(gaps))

    def sends_on(self, day: date) -> bool:
        name = WEEKDAYS[day.weekday()]
        if self.frequency == "weekly":
            return name == self.weekday
        return not self.days or name in self.days

    def describe(self) -> str:
        """``"daily at 08:00 Europe/Paris"``, ``"weekly on mon at 07:30 UTC"``..."""
        if self.frequency == "weekly":
            return f"weekly on {self.weekday} at {self.send_at_text} {self.timezone}"
        on = f" on {','.join(self.days)}" if self.days else ""
        return f"daily{on} at {self.send_at_text} {self.timezone}"


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock ``at`` on ``day`` in ``zone``.

    In a DST gap the time is read with the offset before the gap (02:30 → 03:30 new time);
    in an overlap, the first occurrence (fold 0).
    """
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def next_send(schedule: Schedule, after: datetime) -> datetime:
    """The first send instant strictly after ``after`` (aware), in UTC."""
    zone = schedule.zone
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(16):
        if schedule.sends_on(day):
            moment = local_instant(day, schedule.send_at, zone)
            if moment > after:
                return moment
        day += timedelta(days=1)
    raise AssertionError("a schedule sends at least once a week")


def previous_send(schedule: Schedule, before: datetime) -> datetime:
    """The last send instant at or before ``before``, in UTC."""
    zone = schedule.zone
    day = before.astimezone(zone).date() + timedelta(days=1)
    for _ in range(16):
        if schedule.sends_on(day):
            moment = local_instant(day, schedule.send_at, zone)
            if moment <= before:
                return moment
        day -= timedelta(days=1)
    raise AssertionError("a schedule sends at least once a week")


def window(
    last_covered: date | None,
    today: date,
    *,
    period_days: int,
    lookback_days: int,
    max_days: int,
) -> list[date]:
    """The listing dates one scheduled digest looks at, newest first.

    Normally the dates since the previous send plus ``lookback_days`` before them (papers
    are added to a day's listing after it first appears); after downtime, every date since
    ``last_covered`` (the newest date the previous digest looked at) — but never more than
    ``max_days``, the catch-up cap.
    """
    if last_covered is None or last_covered > today:
        start = today - timedelta(days=period_days - 1 + lookback_days)
    else:
        start = min(last_covered, today - timedelta(days=lookback_days))
    start = max(start, today - timedelta(days=max_days - 1))
    count = (today - start).days + 1
    return [today - timedelta(days=i) for i in range(count)]


def weekdays_text(days: Sequence[str]) -> str:
    return ",".join(days) if days else "every day"
