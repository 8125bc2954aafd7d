"""The fetcher against a real local HTTP server that pages and misbehaves like the real API."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from digest import __version__
from digest.config import Invalid
from digest.config.sources import SOURCE_SETTINGS
from digest.errors import SourceError
from digest.sources import (
    MAX_BACKOFF,
    SOURCE_KINDS,
    FileSource,
    HttpSource,
    backoff_delay,
    excerpt,
    make_source,
    next_link,
    page_url,
    public_url,
    retry_after_seconds,
    retryable,
)
from tests.support.listing_server import PATH, ListingServer, make_listing_server
from tests.support.listings import item, write_days

__all__ = ["make_listing_server"]  # the fixture, imported for this module's tests

TODAY = date(2026, 11, 23)
BUSY, QUIET, EMPTY = date(2026, 11, 18), date(2026, 11, 17), date(2026, 11, 21)
Make = Callable[..., ListingServer]


def papers(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [item(f"2511.{i:05d}", f"Paper number {i}") for i in range(start, start + n)]


@pytest.fixture
def server(make_listing_server: Make) -> ListingServer:
    return make_listing_server(
        {"2026-11-18": papers(250), "2026-11-17": papers(40), "2026-11-23": papers(3, 900)},
        today=TODAY,
    )


class Sleeps:
    """A ``sleep`` that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def source(url: str | ListingServer, **options: Any) -> tuple[HttpSource, Sleeps]:
    sleeps = Sleeps()
    settings: dict[str, Any] = {"timeout": 2.0, "max_retries": 3, "backoff": 0.01}
    settings.update(options)
    target = url.url if isinstance(url, ListingServer) else url
    return HttpSource(target, today=lambda: TODAY, sleep=sleeps, **settings), sleeps


def requested(day: date, *pages: int, limit: int = 100) -> list[str]:
    return [f"{PATH}?date={day}&limit={limit}&p={p}" for p in pages]


# -- paging ----------------------------------------------------------------------------------


async def test_follows_every_page_of_a_busy_day(server: ListingServer) -> None:
    http, sleeps = source(server)
    listing = await http.fetch(BUSY)
    assert len(listing.papers) == 250
    assert [p.key for p in listing.papers[:2]] == ["2511.00000", "2511.00001"]
    assert listing.papers[-1].key == "2511.00249"
    assert listing.date == BUSY and listing.warnings == ()
    assert listing.source == server.url
    assert server.requests == requested(BUSY, 0, 1, 2)
    assert server.user_agents == [f"paper-digest/{__version__}"] * 3
    assert sleeps.delays == []


async def test_a_short_page_ends_the_listing(server: ListingServer) -> None:
    http, _ = source(server)
    listing = await http.fetch(QUIET)
    assert len(listing.papers) == 40
    assert server.requests == requested(QUIET, 0)


async def test_without_link_headers_pages_go_on_while_full(make_listing_server: Make) -> None:
    s = make_listing_server({"2026-11-18": papers(20)}, today=TODAY, link=False)
    http, _ = source(s, page_size=10)
    listing = await http.fetch(BUSY)
    # two full pages ask for a third, which comes back empty and ends it
    assert len(listing.papers) == 20
    assert s.requests == requested(BUSY, 0, 1, 2, limit=10)


async def test_a_link_header_is_followed_even_after_a_short_page(make_listing_server: Make) -> None:
    s = make_listing_server({"2026-11-18": papers(75)}, today=TODAY, max_limit=30)
    http, _ = source(s)
    listing = await http.fetch(BUSY)
    assert [p.key for p in listing.papers] == [f"2511.{i:05d}" for i in range(75)]
    assert s.requests == requested(BUSY, 0) + requested(BUSY, 1, 2, limit=30)


async def test_a_link_back_to_a_fetched_page_is_a_loop(server: ListingServer) -> None:
    server.fail(headers={"Link": f'<{requested(QUIET, 0)[0]}>; rel="next"'})
    http, _ = source(server)
    with pytest.raises(SourceError, match="points back to a page already fetched"):
        await http.fetch(QUIET)
    assert len(server.requests) == 1


async def test_a_listing_that_never_ends_is_cut_off(make_listing_server: Make) -> None:
    s = make_listing_server({"2026-11-18": papers(50)}, today=TODAY)
    http, _ = source(s, page_size=1, max_pages=5)
    with pytest.raises(SourceError, match=r"did not end after 5 pages \(5 items\)"):
        await http.fetch(BUSY)
    assert len(s.requests) == 5


async def test_an_empty_day_is_an_empty_listing(server: ListingServer) -> None:
    http, _ = source(server)
    listing = await http.fetch(EMPTY)
    assert listing.papers == () and listing.warnings == () and listing.date == EMPTY
    assert server.requests == requested(EMPTY, 0)


async def test_a_future_date_is_clamped_to_today(server: ListingServer) -> None:
    http, _ = source(server)
    listing = await http.fetch(date(2026, 12, 25))
    assert listing.date == TODAY
    assert [p.key for p in listing.papers] == ["2511.00900", "2511.00901", "2511.00902"]
    assert listing.warnings == (
        "2026-12-25 is in the future (today is 2026-11-23 in UTC); fetched 2026-11-23 instead",
    )
    assert server.requests == requested(TODAY, 0)


async def test_the_same_paper_on_two_pages_is_kept_once(make_listing_server: Make) -> None:
    day = [*papers(100), item("2511.00005v2", "Again"), item("2511.99999", "Last")]
    s = make_listing_server({"2026-11-18": day}, today=TODAY)
    http, _ = source(s)
    listing = await http.fetch(BUSY)
    assert len(listing.papers) == 101 and len(s.requests) == 2
    assert listing.papers[5].title == "Paper number 5"
    assert listing.papers[-1].key == "2511.99999"
    assert listing.warnings == ("2511.00005 listed twice; kept the first",)


async def test_bad_elements_become_warnings_numbered_across_pages(
    make_listing_server: Make,
) -> None:
    day: list[Any] = [*papers(100), {"paper": {"id": "2511.77777"}}, "junk", *papers(1, 500)]
    s = make_listing_server({"2026-11-18": day}, today=TODAY)
    http, _ = source(s)
    listing = await http.fetch(BUSY)
    assert len(listing.papers) == 101
    assert listing.warnings == (
        "item 100 (2511.77777): 'title' missing, skipped",
        "item 101: expected an object, got a string, skipped",
    )


async def test_a_redirect_is_followed(server: ListingServer) -> None:
    target = requested(QUIET, 0)[0]
    server.fail(301, headers={"Location": target}, body=b"")
    http, _ = source(server.url.replace(PATH, "/old"))
    listing = await http.fetch(QUIET)
    assert len(listing.papers) == 40
    assert server.requests == [f"/old?date={QUIET}&limit=100&p=0", target]


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_with_backoff(server: ListingServer, status: int) -> None:
    server.fail(status, times=2)
    http, sleeps = source(server)
    listing = await http.fetch(QUIET)
    assert len(listing.papers) == 40
    assert server.requests == requested(QUIET, 0, 0, 0)
    assert len(sleeps.delays) == 2
    assert 0.01 <= sleeps.delays[0] <= 0.015 and 0.02 <= sleeps.delays[1] <= 0.03


async def test_429_honours_retry_after_seconds(server: ListingServer) -> None:
    server.fail(429, headers={"Retry-After": "7"})
    http, sleeps = source(server)
    listing = await http.fetch(QUIET)
    assert len(listing.papers) == 40
    assert sleeps.delays == [7.0]


async def test_retry_after_as_an_http_date(server: ListingServer) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server.fail(503, headers={"Retry-After": later})
    http, sleeps = source(server)
    await http.fetch(QUIET)
    assert len(sleeps.delays) == 1 and 28 <= sleeps.delays[0] <= 31


async def test_a_retry_after_too_long_fails_clearly(server: ListingServer) -> None:
    server.fail(429, headers={"Retry-After": "86400"}, body=b'{"error":"Too many requests"}')
    http, sleeps = source(server)
    with pytest.raises(SourceError) as caught:
        await http.fetch(QUIET)
    assert caught.value.reason == (
        "HTTP 429 Too Many Requests: Too many requests; the server asks to wait 86400 s,"
        " more than the 300 s this run waits"
    )
    assert sleeps.delays == [] and len(server.requests) == 1


async def test_retries_run_out_with_a_clear_error(server: ListingServer) -> None:
    page = b"<html><head><style>p{}</style></head><body><h1>Service Unavailable</h1></html>"
    server.fail(503, times=10, body=page)
    http, sleeps = source(server, max_retries=2)
    with pytest.raises(SourceError) as caught:
        await http.fetch(QUIET)
    assert caught.value.url == server.url + f"?date={QUIET}&limit=100&p=0"
    assert caught.value.reason == (
        "HTTP 503 Service Unavailable: Service Unavailable (gave up after 3 attempts)"
    )
    assert caught.value.hint and len(sleeps.delays) == 2 and len(server.requests) == 3


async def test_timeouts_are_retried_then_reported(server: ListingServer) -> None:
    server.fail(delay=0.5, times=5)
    http, sleeps = source(server, timeout=0.1, max_retries=1)
    with pytest.raises(SourceError) as caught:
        await http.fetch(QUIET)
    assert caught.value.reason == "no answer within 0.1 s (ReadTimeout) (gave up after 2 attempts)"
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert len(server.requests) == 2 and len(sleeps.delays) == 1


async def test_a_timeout_then_success(server: ListingServer) -> None:
    server.fail(delay=0.5)
    http, _ = source(server, timeout=0.1)
    listing = await http.fetch(QUIET)
    assert len(listing.papers) == 40 and len(server.requests) == 2


@pytest.mark.parametrize("drop", ["before-response", "mid-body"])
async def test_a_dropped_connection_is_retried(server: ListingServer, drop: Any) -> None:
    server.fail(drop=drop)
    http, sleeps = source(server)
    listing = await http.fetch(QUIET)
    assert len(listing.papers) == 40 and len(sleeps.delays) == 1


async def test_nobody_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http, sleeps = source(f"http://127.0.0.1:{port}{PATH}", max_retries=1)
    with pytest.raises(SourceError) as caught:
        await http.fetch(QUIET)
    assert caught.value.reason.startswith("connection failed: ")
    assert caught.value.reason.endswith("(gave up after 2 attempts)")
    assert isinstance(caught.value.__cause__, httpx.ConnectError) and len(sleeps.delays) == 1


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, b'{"error":"Invalid date"}', "HTTP 400 Bad Request: Invalid date"),
        (401, b"", "HTTP 401 Unauthorized"),
        (403, b"<h1>Forbidden</h1>", "HTTP 403 Forbidden: Forbidden"),
        (404, b'{"error":"Not Found"}', "HTTP 404 Not Found: Not Found"),
        (410, b"x" * 5000, "HTTP 410 Gone: " + "x" * 159 + "…"),
    ],
)
async def test_client_errors_fail_at_once(
    server: ListingServer, status: int, body: bytes, reason: str
) -> None:
    server.fail(status, body=body, headers={"Retry-After": "1"})
    http, sleeps = source(server)
    with pytest.raises(SourceError) as caught:
        await http.fetch(QUIET)
    assert caught.value.reason == reason
    assert len(server.requests) == 1 and sleeps.delays == []


async def test_a_wrong_path_is_the_servers_own_404(server: ListingServer) -> None:
    http, _ = source(server.url + "x")
    with pytest.raises(SourceError, match="HTTP 404 Not Found: Not Found") as caught:
        await http.fetch(QUIET)
    assert caught.value.hint == "check source.url in the config"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b"<!DOCTYPE html><html><body>Sign in</body></html>",
            "expected a JSON list of papers,"
            " got an HTML or XML page (starts with '<!DOCTYPE html>')",
        ),
        (b'[{"paper": {"id": "2511.00001", "title": "Cut', "looks truncated"),
        (b'{"papers": []}', "expected a JSON list of papers, got a JSON object"),
    ],
)
async def test_a_200_of_the_wrong_shape_is_an_error(
    server: ListingServer, body: bytes, reason: str
) -> None:
    server.fail(200, body=body)
    http, sleeps = source(server)
    with pytest.raises(SourceError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        await http.fetch(QUIET)
    assert len(server.requests) == 1 and sleeps.delays == []


async def test_elements_of_the_wrong_type_are_warnings_not_errors(server: ListingServer) -> None:
    server.fail(body=b'[1, "two", {"title": "Three"}]')
    http, _ = source(server)
    listing = await http.fetch(QUIET)
    assert [p.title for p in listing.papers] == ["Three"]
    assert len(listing.warnings) == 2


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_response_is_refused(server: ListingServer, chunked: bool) -> None:
    server.fail(size=50_000, chunked=chunked)
    http, sleeps = source(server, max_bytes=20_000)
    with pytest.raises(SourceError, match="over the limit of 20,000") as caught:
        await http.fetch(QUIET)
    assert ("50,000 bytes" in caught.value.reason) is not chunked  # Content-Length, when sent
    assert caught.value.hint and "source.max_bytes" in caught.value.hint
    assert len(server.requests) == 1 and sleeps.delays == []


async def test_secrets_in_the_url_stay_out_of_messages(server: ListingServer) -> None:
    url = server.url.replace("http://", "http://user:hunter2@") + "?token=s3cret&lang=en"
    server.fail(500)
    http, _ = source(url, max_retries=0)
    with pytest.raises(SourceError) as caught:
        await http.fetch(QUIET)
    assert "hunter2" not in str(caught.value) and "s3cret" not in str(caught.value)
    assert "token=***&lang=en&date=2026-11-17" in str(caught.value)
    assert caught.value.reason.endswith("(gave up after 1 attempt)")
    listing = await http.fetch(QUIET)
    assert listing.source == server.url + "?token=***&lang=en"
    assert "hunter2" not in repr(http)


async def test_httpx_errors_outside_http_are_source_errors() -> None:
    http, sleeps = source("ftp://files.example/listing")
    with pytest.raises(SourceError, match="UnsupportedProtocol") as caught:
        await http.fetch(QUIET)
    assert isinstance(caught.value.__cause__, httpx.UnsupportedProtocol) and sleeps.delays == []


async def test_the_transport_is_a_seam() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[item("2511.00001", "Mocked")])

    http = HttpSource("https://hf.example/api", transport=httpx.MockTransport(answer))
    listing = await http.fetch(date(2000, 1, 3))
    assert [p.title for p in listing.papers] == ["Mocked"]
    assert str(seen[0].url) == "https://hf.example/api?date=2000-01-03&limit=100&p=0"
    assert seen[0].headers["user-agent"] == f"paper-digest/{__version__}"


# -- policy functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('</api?p=2>; rel="next"', "http://h/api?p=2"),
        ('<http://x/a>; rel="prev", <http://x/b>; rel=next', "http://x/b"),
        ('<http://x/a,b>; title="a, b"; rel="next last"', "http://x/a,b"),
        ('<http://x/a>; rel="prev"', None),
        ("garbage", None),
        (None, None),
    ],
)
def test_next_link(header: str | None, expected: str | None) -> None:
    assert next_link(header, "http://h/api?p=1") == expected


NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 120 ", 120.0),
        ("Mon, 23 Nov 2026 12:00:30 GMT", 30.0),
        ("Mon, 23 Nov 2026 11:00:00 GMT", 0.0),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, NOW) == expected


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    assert [backoff_delay(n, 1.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert backoff_delay(3, 1.0, jitter=0.999) == pytest.approx(6.0, abs=0.01)
    assert backoff_delay(40, 1.0, jitter=0.5) == MAX_BACKOFF


def test_retryable_statuses() -> None:
    assert [s for s in (200, 400, 404, 408, 429, 500, 501, 503, 599) if retryable(s)] == [
        429, 500, 501, 503, 599
    ]  # fmt: skip


def test_page_url_keeps_other_parameters() -> None:
    url = page_url("https://h/api?x=1&p=9", BUSY, 2, 100)
    assert url == "https://h/api?x=1&date=2026-11-18&limit=100&p=2"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h.example:8443/api?key=k&q=1", "https://h.example:8443/api?key=***&q=1"),
        ("http://[::1]:8080/api", "http://[::1]:8080/api"),
        ("https://h.example/api", "https://h.example/api"),
    ],
)
def test_public_url(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_excerpt() -> None:
    assert excerpt(b'{"error": "Invalid date"}') == "Invalid date"
    assert excerpt(b"<script>x()</script><p>Bad\n\n gateway</p>") == "Bad gateway"
    assert excerpt(b"\xff" * 3) == "\ufffd\ufffd\ufffd"
    assert excerpt(b"a" * 300, size=10) == "aaaaaaaaa…"


# -- the file source -------------------------------------------------------------------------


async def test_file_source_reads_a_folder_of_days(tmp_path: Path) -> None:
    folder = write_days(
        tmp_path / "l", {"2026-11-18": [item("2511.00001", "A"), item("2511.00001v2", "A2")]}
    )
    listing = await FileSource(folder).fetch(BUSY)
    assert [p.title for p in listing.papers] == ["A"] and listing.date == BUSY
    assert listing.source == str(folder / "2026-11-18.json")
    assert listing.warnings == ("2511.00001 listed twice; kept the first",)


async def test_file_source_missing_day_is_an_empty_listing(tmp_path: Path) -> None:
    folder = write_days(tmp_path / "l", {"2026-11-18": []})
    empty = await FileSource(folder).fetch(date(2026, 11, 22))
    assert empty.papers == () and empty.date == date(2026, 11, 22)
    assert empty.warnings == (f"no file 2026-11-22.json in {folder}: an empty listing",)


async def test_file_source_single_file_serves_every_date(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps([item("2511.00001", "A")]), "utf-8")
    for day in (BUSY, date(2031, 1, 1)):
        listing = await FileSource(one).fetch(day)
        assert len(listing.papers) == 1 and listing.date == day


async def test_file_source_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder") as caught:
        await FileSource(tmp_path / "missing").fetch(BUSY)
    assert caught.value.url == str(tmp_path / "missing")
    assert caught.value.hint == "check source.path in the config"


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"<html>", "got an HTML or XML page"), (b"[{", "invalid JSON"), (b"{}", "got a JSON object")],
)
async def test_file_source_bad_json_names_the_file(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    write_days(tmp_path, {})
    (tmp_path / "2026-11-18.json").write_bytes(content)
    for path in (tmp_path, tmp_path / "2026-11-18.json"):
        with pytest.raises(SourceError, match=reason) as caught:
            await FileSource(path).fetch(BUSY)
        assert caught.value.url == str(tmp_path / "2026-11-18.json")


async def test_a_file_with_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Editors on Windows (Notepad, Excel's "UTF-8" export) start a file with U+FEFF.
    body = json.dumps([item("2511.00001", "Ünïcode paper")], ensure_ascii=False)
    folder = write_days(tmp_path / "l", {})
    (folder / "2026-11-18.json").write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    for path in (folder, folder / "2026-11-18.json"):
        listing = await FileSource(path).fetch(BUSY)
        assert [p.title for p in listing.papers] == ["Ünïcode paper"]
        assert listing.warnings == ()


async def test_a_response_with_a_utf8_byte_order_mark_is_read(server: ListingServer) -> None:
    body = json.dumps([item("2511.00001", "From a mirror")]).encode("utf-8")
    server.fail(200, body=b"\xef\xbb\xbf" + body)
    http, _ = source(server)
    listing = await http.fetch(QUIET)
    assert [p.title for p in listing.papers] == ["From a mirror"] and listing.warnings == ()


async def test_the_bundled_sample_reads_cleanly() -> None:
    folder = Path(__file__).parents[1] / "digest" / "data" / "sample"
    listing = await FileSource(folder).fetch(date(2026, 11, 16))
    assert listing.papers and listing.warnings == ()


# -- make_source -----------------------------------------------------------------------------


def test_make_source() -> None:
    limits: dict[str, Any] = {"timeout": 5.0, "max_retries": 2, "max_bytes": 1000}
    http = make_source("huggingface", "https://h.example/api", **limits)
    assert isinstance(http, HttpSource)
    assert (http.url, http.timeout, http.max_retries, http.max_bytes) == (
        "https://h.example/api", 5.0, 2, 1000
    )  # fmt: skip
    file = make_source("file", "/srv/listings", **limits)
    assert isinstance(file, FileSource) and file.path == Path("/srv/listings")
    with pytest.raises(ValueError, match="unknown source kind 'rss'"):
        make_source("rss", "x", **limits)


def test_make_source_knows_exactly_the_kinds_the_config_accepts() -> None:
    check = next(s.check for s in SOURCE_SETTINGS if s.key == "kind")
    for kind in SOURCE_KINDS:
        assert check(kind) == kind
    with pytest.raises(Invalid):
        check("rss")
