"""The fetcher against a real local HTTP server that pages and misbehaves like the real API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from digest.errors import SourceError
from digest.fetch import FileSource, HttpSource, make_source, next_link, retry_delay
from tests.support.listing_server import ListingServer
from tests.support.listings import item, write_days

TODAY = date(2026, 11, 23)
DAY = date(2026, 11, 18)


def papers(n: int, start: int = 0) -> list[dict[str, object]]:
    return [item(f"2511.{i:05d}", f"Paper number {i}") for i in range(start, start + n)]


@pytest.fixture
def server() -> Iterator[ListingServer]:
    with ListingServer(
        {"2026-11-18": papers(250), "2026-11-17": papers(40), "2026-11-23": papers(3, 900)},
        today=TODAY,
    ) as s:
        yield s


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def source(server: ListingServer, **options: object) -> tuple[HttpSource, Sleeps]:
    sleeps = Sleeps()
    settings: dict[str, object] = {"timeout": 2.0, "max_retries": 3, "backoff": 0.01}
    settings.update(options)
    return HttpSource(server.url, today=lambda: TODAY, sleep=sleeps, **settings), sleeps  # type: ignore[arg-type]


async def test_follows_every_page_of_a_busy_day(server: ListingServer) -> None:
    http, sleeps = source(server)
    listing = await http.fetch(DAY)
    assert len(listing.papers) == 250
    assert [p.key for p in listing.papers[:2]] == ["2511.00000", "2511.00001"]
    assert listing.date == DAY and listing.warnings == ()
    assert server.requests == [
        f"/api/daily_papers?date=2026-11-18&limit=100&p={p}" for p in range(3)
    ]
    assert sleeps.delays == []


async def test_a_short_page_ends_the_listing(server: ListingServer) -> None:
    http, _ = source(server)
    listing = await http.fetch(date(2026, 11, 17))
    assert len(listing.papers) == 40
    assert len(server.requests) == 1


async def test_pages_without_link_header_go_on_while_full() -> None:
    with ListingServer({"2026-11-18": papers(20)}, today=TODAY) as s:
        http, _ = source(s, page_size=10)
        listing = await http.fetch(DAY)
    # a full page asks for the next; the third comes back empty and ends it
    assert len(listing.papers) == 20
    assert len(s.requests) == 3


async def test_an_empty_day_is_an_empty_listing(server: ListingServer) -> None:
    http, _ = source(server)
    listing = await http.fetch(date(2026, 11, 21))
    assert listing.papers == () and len(server.requests) == 1


async def test_a_future_date_is_clamped_to_today(server: ListingServer) -> None:
    http, _ = source(server)
    listing = await http.fetch(date(2026, 12, 25))
    assert listing.date == TODAY
    assert len(listing.papers) == 3
    assert "future" in listing.warnings[0]
    assert "date=2026-11-23" in server.requests[0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_with_backoff(server: ListingServer, status: int) -> None:
    server.fail(status, times=2)
    http, sleeps = source(server)
    listing = await http.fetch(date(2026, 11, 17))
    assert len(listing.papers) == 40
    assert len(server.requests) == 3
    assert len(sleeps.delays) == 2 and sleeps.delays[1] > sleeps.delays[0] > 0


async def test_429_honours_retry_after(server: ListingServer) -> None:
    server.fail(429, headers={"Retry-After": "7"})
    http, sleeps = source(server)
    listing = await http.fetch(date(2026, 11, 17))
    assert len(listing.papers) == 40
    assert sleeps.delays == [7.0]


async def test_a_retry_after_too_long_fails_clearly(server: ListingServer) -> None:
    server.fail(429, headers={"Retry-After": "86400"})
    http, sleeps = source(server)
    with pytest.raises(SourceError, match="asks to wait 86400 s"):
        await http.fetch(date(2026, 11, 17))
    assert sleeps.delays == []


async def test_retries_run_out_with_a_clear_error(server: ListingServer) -> None:
    server.fail(503, times=10, body=b"<html>Service Unavailable</html>")
    http, sleeps = source(server, max_retries=2)
    with pytest.raises(SourceError) as caught:
        await http.fetch(date(2026, 11, 17))
    message = str(caught.value)
    assert "HTTP 503" in message and "after 3 attempts" in message
    assert "date=2026-11-17" in message
    assert len(sleeps.delays) == 2


async def test_timeouts_are_retried_then_reported(server: ListingServer) -> None:
    server.fail(delay=0.6, times=5)
    http, _ = source(server, timeout=0.2, max_retries=1)
    with pytest.raises(SourceError, match=r"no answer within 0.2 s.*after 2 attempts"):
        await http.fetch(date(2026, 11, 17))


async def test_a_timeout_then_success(server: ListingServer) -> None:
    server.fail(delay=0.6, times=1)
    http, _ = source(server, timeout=0.2)
    listing = await http.fetch(date(2026, 11, 17))
    assert len(listing.papers) == 40


async def test_a_dropped_connection_is_retried(server: ListingServer) -> None:
    server.fail(drop=True)
    http, sleeps = source(server)
    listing = await http.fetch(date(2026, 11, 17))
    assert len(listing.papers) == 40 and len(sleeps.delays) == 1


@pytest.mark.parametrize(("status", "text"), [(400, "Invalid date"), (404, "Not Found"), (403, "")])
async def test_client_errors_fail_at_once(server: ListingServer, status: int, text: str) -> None:
    server.fail(status, body=json.dumps({"error": text or "Forbidden"}).encode())
    http, sleeps = source(server)
    with pytest.raises(SourceError, match=f"HTTP {status}") as caught:
        await http.fetch(date(2026, 11, 17))
    assert text in str(caught.value)
    assert len(server.requests) == 1 and sleeps.delays == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
        (b'[{"paper": {"id": "2511.00001", "title": "Cut', "truncated"),
        (b'{"papers": []}', "expected a JSON list"),
    ],
)
async def test_a_200_of_the_wrong_shape_is_an_error(
    server: ListingServer, body: bytes, reason: str
) -> None:
    server.fail(200, body=body)
    http, _ = source(server)
    with pytest.raises(SourceError, match=reason):
        await http.fetch(date(2026, 11, 17))


async def test_an_oversized_response_is_refused(server: ListingServer) -> None:
    server.fail(200, size=50_000)
    http, _ = source(server, max_bytes=20_000)
    with pytest.raises(SourceError, match="over the limit of 20,000"):
        await http.fetch(date(2026, 11, 17))


async def test_the_same_paper_on_two_pages_is_kept_once() -> None:
    day = [*papers(100), item("2511.00005v2", "Again"), item("2511.99999", "Last")]
    with ListingServer({"2026-11-18": day}, today=TODAY) as s:
        http, _ = source(s)
        listing = await http.fetch(DAY)
    assert len(listing.papers) == 101
    assert listing.papers[5].title == "Paper number 5"
    assert any("listed twice" in w for w in listing.warnings)


async def test_bad_elements_become_warnings(server: ListingServer) -> None:
    server.days["2026-11-16"] = [{"paper": {"id": "2511.1"}}, item("2511.00001", "Fine")]
    http, _ = source(server)
    listing = await http.fetch(date(2026, 11, 16))
    assert [p.key for p in listing.papers] == ["2511.00001"]
    assert "'title' missing" in listing.warnings[0]


def test_next_link_and_retry_delay() -> None:
    assert next_link('</api?p=2>; rel="next"', "http://h/api?p=1") == "http://h/api?p=2"
    assert next_link('<http://x/a>; rel="prev", <http://x/b>; rel=next', "http://h") == "http://x/b"
    assert next_link(None, "http://h") is None
    from datetime import UTC, datetime

    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert retry_delay(1, 1.0, "5", now) == 5.0
    assert retry_delay(1, 1.0, "Mon, 23 Nov 2026 12:00:30 GMT", now) == 30.0
    assert 4.0 <= retry_delay(3, 1.0, None, now) <= 6.0


async def test_file_source_reads_a_folder_of_days(tmp_path: Path) -> None:
    folder = write_days(tmp_path / "l", {"2026-11-18": [item("2511.1", "A"), item("2511.1", "A")]})
    listing = await FileSource(folder).fetch(DAY)
    assert [p.title for p in listing.papers] == ["A"]
    assert listing.warnings
    empty = await FileSource(folder).fetch(date(2026, 11, 19))
    assert empty.papers == () and "empty day" in empty.warnings[0]


async def test_file_source_single_file_and_errors(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps([item("2511.00001", "A")]), "utf-8")
    assert len((await FileSource(one).fetch(DAY)).papers) == 1
    with pytest.raises(SourceError, match="no such file or folder"):
        await FileSource(tmp_path / "missing").fetch(DAY)
    broken = tmp_path / "broken.json"
    broken.write_text("<html>", "utf-8")
    with pytest.raises(SourceError, match=r"broken\.json"):
        await FileSource(broken).fetch(DAY)


def test_make_source() -> None:
    assert isinstance(
        make_source("huggingface", "http://h/api", timeout=1, max_retries=0, max_bytes=10),
        HttpSource,
    )
    assert isinstance(
        make_source("file", "/tmp", timeout=1, max_retries=0, max_bytes=10), FileSource
    )
    with pytest.raises(ValueError, match="rss"):
        make_source("rss", "x", timeout=1, max_retries=0, max_bytes=10)
