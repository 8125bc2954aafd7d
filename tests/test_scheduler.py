"""Scheduled sends with a controllable clock: each subscriber's own hour and zone across DST,
weekly and chosen days, one catch-up digest after an outage, restarts that send nothing.

Real SMTP server (aiosmtpd), real SQLite file, real listing files; the clock is the ``now``
handed to each pass, as ``digest serve`` hands it the wall clock every minute.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.config import load
from digest.models import Subscriber
from digest.run import Context, make_context
from digest.schedule import ScheduleError, check_zone, zone_like
from digest.serve import PassReport, Service, next_sends, send_due
from digest.store import Store
from tests.support.listings import item, write_days
from tests.support.smtpd import SmtpServer

Server = Callable[..., SmtpServer]
ARXIV = re.compile(r"arxiv\.org/abs/(\d{4}\.\d{5})")


def day_items(day: date, n: int = 4, repeat_from: date | None = None) -> list[dict[str, Any]]:
    """``n`` papers of ``day`` (all about diffusion), plus two of ``repeat_from`` again."""
    stamp = day.strftime("%y%m%d")
    out = [
        item(f"26{stamp[2:4]}.{stamp[4:]}{i:03d}", f"Diffusion study {i} of {day}", "diffusion")
        for i in range(n)
    ]
    if repeat_from is not None:
        out += day_items(repeat_from, 2)
    return out


class World:
    """A folder with listings, a config, a database and an SMTP server; passes run at any
    instant. ``sent`` lists (pass instant, recipient, paper ids) for every message received."""

    def __init__(
        self, tmp: Path, server: SmtpServer, start: date, days: int, db_url: str | None = None
    ) -> None:
        self.tmp = tmp
        self.server = server
        self.db_url = db_url
        listings = {}
        for i in range(days):
            day = start + timedelta(days=i)
            listings[day.isoformat()] = day_items(day, repeat_from=day - timedelta(days=1))
        write_days(tmp / "listings", listings)
        self.write_config()
        self.store = Store(self.config.database)
        self.sent: list[tuple[datetime, str, list[str]]] = []
        self._context: Context | None = None

    def write_config(self, extra: str = "") -> None:
        (self.tmp / "config.toml").write_text(
            f"""
timezone = "UTC"
{f'database = "{self.db_url}"' if self.db_url else ""}
{extra}
[source]
kind = "file"
path = "listings"
[smtp]
host = "{self.server.host}"
port = {self.server.port}
[mail]
max_papers = 200
""",
            "utf-8",
        )
        self.config = load(self.tmp / "config.toml")

    def context(self) -> Context:
        """The context of a pass, built once per config (its renderer is costly to make)."""
        if self._context is None or self._context.config is not self.config:
            self._context = make_context(self.config, self.store)
        return self._context

    def add(self, email: str, **schedule: Any) -> Subscriber:
        return self.store.members.add_subscriber(Subscriber(email=email, **schedule))

    async def at(self, now: datetime) -> PassReport:
        before = len(self.server.messages)
        report = await send_due(replace(self.context(), now=now))
        for received in self.server.messages[before:]:
            msg = received.message
            body = msg.get_body(("plain",))
            assert body is not None
            ids = ARXIV.findall(body.get_content())
            self.sent.append((now, str(msg["To"]), list(dict.fromkeys(ids))))
        return report

    async def every(self, start: datetime, end: datetime, step: timedelta) -> None:
        now = start
        while now <= end:
            await self.at(now)
            now += step

    def sends_to(self, email: str) -> list[datetime]:
        return [when for when, to, _ in self.sent if email in to]

    def papers_to(self, email: str) -> list[str]:
        return [p for _, to, ids in self.sent if email in to for p in ids]


@pytest.fixture
def world(tmp_path: Path, smtp_server: Server) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(start: date = date(2026, 3, 5), days: int = 10, db_url: str | None = None) -> World:
        w = World(tmp_path, smtp_server(), start, days, db_url)
        made.append(w)
        return w

    yield make
    for w in made:
        w.store.close()


def local(when: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo(zone)).strftime("%a %H:%M")


async def test_the_local_hour_holds_across_the_spring_dst_change(
    world: Callable[..., World], db_url: str
) -> None:
    w = world(start=date(2026, 3, 5), days=6, db_url=db_url)
    w.add("ny@example.org", send_at="08:00", timezone="America/New_York")
    w.add("paris@example.org", send_at="08:00", timezone="Europe/Paris")
    start = datetime(2026, 3, 6, 0, tzinfo=UTC)
    await w.every(start, start + timedelta(days=4), timedelta(minutes=30))
    ny = w.sends_to("ny@example.org")
    # 8 March 2026: New York moves from UTC-5 to UTC-4; Paris stays UTC+1 until 29 March.
    assert [t.strftime("%m-%d %H:%M") for t in ny] == [
        "03-06 13:00",
        "03-07 13:00",
        "03-08 12:00",
        "03-09 12:00",
    ]
    assert {local(t, "America/New_York") for t in ny} == {
        "Fri 08:00", "Sat 08:00", "Sun 08:00", "Mon 08:00"
    }  # fmt: skip
    paris = w.sends_to("paris@example.org")
    assert [t.strftime("%m-%d %H:%M") for t in paris] == [
        "03-06 07:00",
        "03-07 07:00",
        "03-08 07:00",
        "03-09 07:00",
    ]


async def test_a_send_time_in_the_spring_gap_goes_out_once_after_it(
    world: Callable[..., World],
) -> None:
    w = world(start=date(2026, 3, 6), days=4)
    w.add("gap@example.org", send_at="02:30", timezone="America/New_York")
    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    await w.every(start, start + timedelta(days=2), timedelta(minutes=30))
    sends = w.sends_to("gap@example.org")
    # 02:30 does not exist on 8 March: sent at 03:30 EDT (07:30 UTC), then 02:30 EDT again.
    assert [t.strftime("%m-%d %H:%M") for t in sends] == ["03-08 07:30", "03-09 06:30"]


async def test_an_hour_repeated_in_autumn_sends_once(world: Callable[..., World]) -> None:
    w = world(start=date(2026, 10, 30), days=5)
    w.add("fold@example.org", send_at="01:30", timezone="America/New_York")
    start = datetime(2026, 10, 31, 12, tzinfo=UTC)
    await w.every(start, start + timedelta(days=2), timedelta(minutes=30))
    sends = w.sends_to("fold@example.org")
    # 1 November: 01:30 happens twice (EDT, then EST); one digest, at the first.
    assert [t.strftime("%m-%d %H:%M") for t in sends] == ["11-01 05:30", "11-02 06:30"]


async def test_several_zones_each_at_their_own_hour(world: Callable[..., World]) -> None:
    w = world(start=date(2026, 11, 16), days=5)
    zones = {
        "tokyo@example.org": ("07:00", "Asia/Tokyo"),
        "berlin@example.org": ("08:00", "Europe/Berlin"),
        "la@example.org": ("06:30", "America/Los_Angeles"),
        "kolkata@example.org": ("09:15", "Asia/Kolkata"),
    }
    for email, (at, zone) in zones.items():
        w.add(email, send_at=at, timezone=zone)
    start = datetime(2026, 11, 17, 0, tzinfo=UTC)
    await w.every(start, start + timedelta(days=2) - timedelta(minutes=15), timedelta(minutes=15))
    for email, (at, zone) in zones.items():
        sends = w.sends_to(email)
        assert len(sends) == 2, email
        assert {local(t, zone)[4:] for t in sends} == {at}, email
    # One fetch-and-send pass serves everyone due at the same instant.
    assert len({t for t, _, _ in w.sent}) == 8


async def test_weekly_digests_come_on_their_weekday_and_cover_the_week(
    world: Callable[..., World],
) -> None:
    w = world(start=date(2026, 11, 9), days=16)
    w.add("weekly@example.org", send_at="09:00", frequency="weekly", weekday="fri")
    w.add("weekdays@example.org", send_at="09:00", days=("mon", "wed"))
    start = datetime(2026, 11, 10, 0, tzinfo=UTC)
    await w.every(start, start + timedelta(days=14), timedelta(hours=1))
    weekly = w.sends_to("weekly@example.org")
    assert [t.strftime("%a %m-%d %H:%M") for t in weekly] == [
        "Fri 11-13 09:00",
        "Fri 11-20 09:00",
    ]
    # The second covers the whole week since the first: 7 days of 4 new papers each.
    second = [ids for when, to, ids in w.sent if "weekly@" in to][1]
    assert len(second) >= 7 * 4
    days = w.sends_to("weekdays@example.org")
    assert [t.strftime("%a") for t in days] == ["Wed", "Mon", "Wed", "Mon"]
    for email in ("weekly@example.org", "weekdays@example.org"):
        papers = w.papers_to(email)
        assert len(papers) == len(set(papers)), "a paper was sent twice"


async def test_three_days_down_gives_exactly_one_catch_up_digest(
    world: Callable[..., World], db_url: str
) -> None:
    w = world(start=date(2026, 11, 10), days=10, db_url=db_url)
    for i in range(5):
        w.add(f"r{i}@example.org", send_at="08:00")
    await w.at(datetime(2026, 11, 11, 8, 0, tzinfo=UTC))  # places them: nothing sent
    assert w.sent == []
    await w.at(datetime(2026, 11, 12, 8, 0, tzinfo=UTC))
    assert len(w.sent) == 5
    # Down from the 12th 09:00 until the 15th 14:20: the 13th, 14th and 15th were missed.
    report = await w.at(datetime(2026, 11, 15, 14, 20, tzinfo=UTC))
    assert report.due == 5
    assert [d.isoformat() for d in report.dates] == [
        "2026-11-15",
        "2026-11-14",
        "2026-11-13",
        "2026-11-12",
    ]
    await w.every(
        datetime(2026, 11, 15, 14, 30, tzinfo=UTC),
        datetime(2026, 11, 16, 7, 59, tzinfo=UTC),
        timedelta(minutes=10),
    )
    for i in range(5):
        sends = w.sends_to(f"r{i}@example.org")
        assert [t.strftime("%d %H:%M") for t in sends] == ["12 08:00", "15 14:20"]
        catch_up = [ids for when, to, ids in w.sent if f"r{i}@" in to][1]
        expected = {f"2611.{d}{n:03d}" for d in (13, 14, 15) for n in range(4)}
        assert expected <= set(catch_up)
        papers = w.papers_to(f"r{i}@example.org")
        assert len(papers) == len(set(papers))
    subject = w.server.messages[-1].message["Subject"]
    assert "12–15 Nov 2026" in subject
    await w.at(datetime(2026, 11, 16, 8, 0, tzinfo=UTC))
    assert len(w.sent) == 15


async def test_the_catch_up_digest_is_capped(world: Callable[..., World]) -> None:
    w = world(start=date(2026, 11, 1), days=20)
    w.write_config("[schedule]\ncatch_up_days = 3\n")
    w.add("late@example.org", send_at="08:00")
    await w.at(datetime(2026, 11, 2, 7, 0, tzinfo=UTC))
    await w.at(datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    report = await w.at(datetime(2026, 11, 12, 9, 0, tzinfo=UTC))  # ten days down
    assert len(report.dates) == 3
    assert len(w.sends_to("late@example.org")) == 2


async def test_a_restart_mid_day_sends_nothing_twice(world: Callable[..., World]) -> None:
    w = world(start=date(2026, 11, 10), days=5)
    w.add("ada@example.org", send_at="08:00")
    w.add("bo@example.org", send_at="18:00", timezone="Europe/Paris")
    await w.every(
        datetime(2026, 11, 11, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 11, 12, 0, tzinfo=UTC),
        timedelta(minutes=5),
    )
    assert [to for _, to, _ in w.sent] == ["ada@example.org"]
    # "Restart": a new store connection and a new service; a pass at 12:05 and on.
    w.store.close()
    w.store = Store(w.config.database)
    w._context = None
    base = w.context()
    svc = Service(lambda now: replace(base, now=now))
    for minutes in range(5, 60, 5):
        await svc.tick(datetime(2026, 11, 11, 12, minutes, tzinfo=UTC))
    assert len(w.server.messages) == 1
    await w.at(datetime(2026, 11, 11, 17, 0, tzinfo=UTC))
    assert [to for _, to, _ in w.sent] == ["ada@example.org", "bo@example.org"]


async def test_starting_never_sends_by_itself(world: Callable[..., World]) -> None:
    w = world(start=date(2026, 11, 10), days=3)
    for i in range(3):
        w.add(f"new{i}@example.org", send_at="06:00")
    report = await w.at(datetime(2026, 11, 11, 15, 0, tzinfo=UTC))
    assert report.placed == 3 and report.due == 0 and w.sent == []
    nxt = {s.email: t for s, _, t in next_sends(w.config, w.store, datetime.now(UTC))}
    assert set(nxt.values()) == {datetime(2026, 11, 12, 6, 0, tzinfo=UTC)}


async def test_a_failing_listing_keeps_subscribers_due_until_it_works(
    world: Callable[..., World],
) -> None:
    w = world(start=date(2026, 11, 10), days=5)
    w.add("ada@example.org", send_at="08:00")
    await w.at(datetime(2026, 11, 11, 7, 0, tzinfo=UTC))
    broken = w.tmp / "listings" / "2026-11-12.json"
    good = broken.read_bytes()
    broken.write_text("<html>oops</html>", "utf-8")
    from digest.errors import SourceError

    with pytest.raises(SourceError):
        await w.at(datetime(2026, 11, 12, 8, 0, tzinfo=UTC))
    assert w.sent == []
    broken.write_bytes(good)
    await w.at(datetime(2026, 11, 12, 8, 30, tzinfo=UTC))
    assert len(w.sends_to("ada@example.org")) == 1
    runs = w.store.run_log.runs()
    assert [r.outcome for r in runs[:2]] == ["ok", "failed"]


async def test_only_active_subscribers_are_scheduled(world: Callable[..., World]) -> None:
    w = world(start=date(2026, 11, 10), days=3)
    for state in ("active", "paused", "pending", "unsubscribed", "suspended"):
        sub = w.add(f"{state}@example.org", send_at="08:00")
        if state != "active":
            assert sub.id is not None
            assert w.store.members.set_status(sub.id, state, None, only_from=("active",))
    await w.at(datetime(2026, 11, 11, 7, 0, tzinfo=UTC))
    await w.at(datetime(2026, 11, 11, 8, 0, tzinfo=UTC))
    assert Counter(to for _, to, _ in w.sent) == {"active@example.org": 1}


async def test_the_service_refreshes_the_listing_hourly_even_when_nobody_is_due(
    world: Callable[..., World],
) -> None:
    w = world(start=date(2026, 11, 10), days=3)
    base = w.context()
    svc = Service(lambda now: replace(base, now=now))
    start = datetime(2026, 11, 11, 9, 0, tzinfo=UTC)
    first = await svc.tick(start)
    assert first is not None and first.run_id is not None
    assert [d.isoformat() for d in first.dates] == ["2026-11-11", "2026-11-10"]
    assert (w.config.feeds.dir / "feed.atom").exists()
    quiet = await svc.tick(start + timedelta(minutes=30))
    assert quiet is not None and quiet.run_id is None  # nothing due, fetched recently
    later = await svc.tick(start + timedelta(minutes=61))
    assert later is not None and later.run_id is not None
    assert [r.outcome for r in w.store.run_log.runs()] == ["ok", "ok"]
    assert w.sent == []


async def test_a_failing_pass_backs_off_instead_of_hammering(world: Callable[..., World]) -> None:
    w = world(start=date(2026, 11, 10), days=3)
    (w.tmp / "listings" / "2026-11-11.json").write_text("{", "utf-8")
    base = w.context()
    svc = Service(lambda now: replace(base, now=now))
    start = datetime(2026, 11, 11, 9, 0, tzinfo=UTC)
    assert await svc.tick(start) is None
    assert svc.last_error is not None and "2026-11-11" in svc.last_error
    assert await svc.tick(start + timedelta(minutes=1)) is None  # backing off: no attempt
    assert len(w.store.run_log.runs()) == 1
    (w.tmp / "listings" / "2026-11-11.json").write_text("[]", "utf-8")
    recovered = await svc.tick(start + timedelta(minutes=3))
    assert recovered is not None and svc.last_error is None
    assert [r.outcome for r in w.store.run_log.runs()] == ["ok", "failed"]  # 10 Nov had papers


def test_a_service_whose_ticks_stopped_is_not_healthy() -> None:
    svc = Service(lambda now: None, tick_seconds=60)  # type: ignore[arg-type,return-value]
    assert not svc.healthy
    svc.running = True
    assert svc.healthy
    svc.last_tick = time.monotonic() - 200
    assert svc.healthy
    svc.last_tick = time.monotonic() - 301
    assert not svc.healthy


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("Europe/Berln", "Europe/Berlin"),  # a typo
        ("europe/berlin", "Europe/Berlin"),  # another case
        ("America/New York", "America/New_York"),  # a space for the underscore
        ("Berlin", "Europe/Berlin"),  # the city alone
        ("Mars/Olympus", None),
        ("Europe/Nowhere", None),
    ],
)
def test_a_time_zone_typo_is_answered_with_the_zone_it_most_likely_meant(
    typed: str, meant: str | None
) -> None:
    assert zone_like(typed) == meant
    with pytest.raises(ScheduleError) as caught:
        check_zone(typed)
    hint = f"did you mean {meant}?" if meant else 'an IANA name such as "Europe/Paris"'
    assert hint in caught.value.message
