"""The public endpoints tell strangers nothing and hold under abuse (issue 19): the health
check (status and timestamps only; 503 after three failed passes in a row), the request
body limit (413 while the body streams in: nothing past the limit is read), rate limits kept
in the database (across restarts and processes, bounded) and the logs (one logfmt line per
request and per pass, tokens redacted), in-process and from a real ``digest serve``."""

from __future__ import annotations

import logging
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from digest.compose import tokens
from digest.config import load
from digest.models import Subscriber
from digest.run import Context, make_context, status
from digest.serve import (
    LogfmtFormatter,
    MemoryEvents,
    RateLimiter,
    Service,
    create_app,
    redact,
)
from digest.store import Store
from tests.support.listings import item, write_days, write_site_config
from tests.support.smtpd import SmtpServer

SECRET = b"public-test-secret-0123456789abcdef"
DAY = date(2026, 11, 16)
NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)
#: What a broken listing file holds: its bytes must not reach a stranger.
LEAKY = '{"papers": "INTERNAL-BYTES-0xdeadbeef'


@dataclass
class Public:
    """The app over a real SQLite file, its service (not started) and an HTTP client."""

    tmp: Path
    ctx: Context
    service: Service
    client: httpx.AsyncClient


def build(ctx: Context, service: Service) -> httpx.AsyncClient:
    web = create_app(lambda: ctx, service, SECRET, start_service=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://testserver")


@pytest.fixture
async def public(tmp_path: Path, smtp_server: Callable[..., SmtpServer]) -> AsyncIterator[Public]:
    write_days(tmp_path / "listings", {DAY.isoformat(): [item("2611.00001", "Diffusion", "x")]})
    path = write_site_config(
        tmp_path, smtp_server(), top='base_url = "http://testserver"\ntimezone = "UTC"'
    )
    config = load(path)
    store = Store(config.database)
    ctx = make_context(config, store, now=NOW)
    service = Service(lambda now: replace(ctx, now=now))
    async with build(ctx, service) as client:
        yield Public(tmp_path, ctx, service, client)
    store.close()


# -- /healthz -------------------------------------------------------------------------------


async def test_healthz_shows_status_and_timestamps_only_and_fails_after_three_failed_passes(
    public: Public,
) -> None:
    (public.tmp / "listings" / f"{DAY.isoformat()}.json").write_text(LEAKY, "utf-8")
    public.service.running = True
    answers = []
    for minutes in (0, 3, 10):  # each after the back-off of the one before
        assert await public.service.tick(NOW + timedelta(minutes=minutes)) is None
        answers.append(await public.client.get("/healthz"))
    for answer in answers:
        assert set(answer.json()) == {
            "status", "scheduler", "last_pass", "last_good_pass", "last_fetch"
        }  # fmt: skip
        assert str(public.tmp) not in answer.text and "INTERNAL" not in answer.text
        assert "listing" not in answer.text and "error" not in answer.text
    assert [(a.status_code, a.json()["status"]) for a in answers] == [
        (200, "degraded"),
        (200, "degraded"),
        (503, "failing"),
    ]
    assert answers[-1].json()["last_pass"] == (NOW + timedelta(minutes=10)).isoformat()
    assert answers[-1].json()["last_good_pass"] is None
    # The details are the operator's: `digest status` (and the log) have them.
    failing = status(public.ctx.store).failing
    assert len(failing) == 3 and failing[0].error and str(public.tmp) in failing[0].error
    # A good pass makes it healthy again.
    (public.tmp / "listings" / f"{DAY.isoformat()}.json").write_text("[]", "utf-8")
    assert await public.service.tick(NOW + timedelta(minutes=30)) is not None
    healthy = await public.client.get("/healthz")
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"


# -- the request body limit -----------------------------------------------------------------

CHUNK = 16 * 1024
BOUNDARY = "digestboundary"


class Stream:
    """A 60 MB multipart body (one file part, no CSRF token), produced only as it is read."""

    def __init__(self, total: int = 60 * 1024 * 1024) -> None:
        self.total = total
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="email"; '
            f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self.read += len(head)
        yield head
        while self.read < self.total:
            self.read += CHUNK
            yield b"x" * CHUNK


async def test_a_body_over_the_limit_is_refused_while_it_streams(public: Public) -> None:
    body = Stream()
    answer = await public.client.post(
        "/subscribe",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert answer.status_code == 413 and answer.headers["connection"] == "close"
    assert "Too large" in answer.text
    limit = public.ctx.config.web.max_body
    assert limit == 64 * 1024  # the default
    assert body.read <= limit + CHUNK  # nothing past the limit was read (or spooled)


async def test_a_declared_length_over_the_limit_is_refused_before_reading(public: Public) -> None:
    body = Stream()
    answer = await public.client.post(
        "/unsubscribe?token=x",
        content=body,
        headers={"Content-Length": str(body.total), "Content-Type": "text/plain"},
    )
    assert answer.status_code == 413
    assert body.read == 0


async def test_a_streamed_body_over_the_limit_is_refused_where_the_handler_reads_none(
    public: Public,
) -> None:
    """The unsubscribe POST acts on its signed token and never reads its body: a 60 MB body
    without Content-Length is still 413, and the subscriber stays subscribed."""
    sub = public.ctx.store.members.add_subscriber(Subscriber(email="ada@example.org"))
    token = tokens.sign(SECRET, "unsubscribe", str(sub.id))
    body = Stream()
    answer = await public.client.post(
        f"/unsubscribe?token={token}", content=body, headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 413
    assert body.read <= public.ctx.config.web.max_body + CHUNK
    after = public.ctx.store.members.subscriber("ada@example.org")
    assert after is not None and after.status == "active"


async def test_a_body_under_the_limit_reaches_the_form(public: Public) -> None:
    answer = await public.client.post(
        "/subscribe", data={"email": "a@example.org", "x": "y" * 60_000}
    )
    assert answer.status_code == 400  # the form speaks: no CSRF token
    assert "This form expired" in answer.text


# -- rate limits ----------------------------------------------------------------------------


async def test_rate_limits_survive_a_restart(public: Public) -> None:
    codes = [(await public.client.get("/preview?keywords=x")).status_code for _ in range(121)]
    assert codes == [200] * 120 + [429]
    async with build(public.ctx, public.service) as restarted:  # a new app: nothing in memory
        again = await restarted.get("/preview?keywords=x")
    assert again.status_code == 429 and int(again.headers["retry-after"]) > 0


HITS = """
import sys, time
from digest.serve import RateLimiter
from digest.store import Store
url, start = sys.argv[1], float(sys.argv[2])
limiter = RateLimiter(10, 3600, name="race", events=Store(url).limits)
time.sleep(max(0.0, start - time.time()))
print(sum(1 for _ in range(15) if limiter.allow("198.51.100.7") == 0))
"""


def test_a_rate_limit_holds_across_processes(db_url: str) -> None:
    Store(db_url).close()  # the tables, once
    start = time.time() + 2.0
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", HITS, db_url, str(start)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    allowed = [int(p.communicate(timeout=60)[0]) for p in racers]
    assert sum(allowed) == 10, allowed


def test_the_rate_table_keeps_only_live_events(db_url: str) -> None:
    with Store(db_url) as store:
        limiter = RateLimiter(3, 60, name="t", events=store.limits)
        for i in range(500):
            assert limiter.allow(f"203.0.113.{i}", now=1000.0) == 0
        assert limiter.allow("203.0.113.1", now=1001.0) == 0
        assert store.limits.live() == 501
        assert limiter.allow("203.0.113.1", now=1002.0) == 0  # its third
        assert limiter.allow("203.0.113.1", now=1003.0) == pytest.approx(57.0)
        assert limiter.allow("x", now=1061.5) == 0  # every other key's events have expired
        assert store.limits.live() == 2
        assert limiter.allow("203.0.113.1", now=1061.5) == 0  # the oldest two left the window


def test_the_memory_limiter_is_bounded() -> None:
    events = MemoryEvents(max_keys=1000)
    limiter = RateLimiter(10, 3600, events=events)
    for i in range(150_000):  # the old limiter scanned every key for each key past 100,000
        assert limiter.allow(f"k{i}", now=float(i)) == 0
    assert len(events) == 1000
    assert limiter.allow("k149999", now=150_000.0) == 0  # the recent keys are still counted
    for _ in range(8):
        limiter.allow("k149999", now=150_000.0)
    assert limiter.allow("k149999", now=150_000.0) > 0


# -- logs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "logged"),
    [
        ("/unsubscribe", "token=eyJ1.sig", "/unsubscribe?token=[redacted]"),
        ("/confirm", "token=a&token=b", "/confirm?token=[redacted]&token=[redacted]"),
        (
            "/manage",
            "utm=1&Token=x&api_key=k",
            "/manage?utm=[redacted]&Token=[redacted]&api_key=[redacted]",
        ),
        ("/preview", "keywords=diffusion&days=2", "/preview?keywords=diffusion&days=2"),
        ("/feeds/AbCdEf0123456789xyz.atom", "", "/feeds/[redacted].atom"),
        ("/feeds/AbCdEf0123456789xyz", "", "/feeds/[redacted]"),
        ("/archive/2026-11-16", "", "/archive/2026-11-16"),
        ("/", "token", "/?token"),
    ],
)
def test_logged_targets_carry_no_token(path: str, query: str, logged: str) -> None:
    assert redact(path, query) == logged


PAIR = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def logfmt(line: str) -> dict[str, str]:
    """The pairs of one logfmt line; fails unless the whole line is pairs."""
    pairs = PAIR.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, line
    return {k: v.strip('"') for k, v in pairs}


async def test_a_request_is_logged_on_one_line_without_its_token(
    public: Public, caplog: pytest.LogCaptureFixture
) -> None:
    token = tokens.sign(SECRET, "unsubscribe", "1")
    caplog.set_level(logging.INFO, logger="digest.access")
    await public.client.get(f"/unsubscribe?token={token}")
    await public.client.get("/feeds/SecretFeedToken0123456789.atom")
    (first, second) = [r for r in caplog.records if r.name == "digest.access"]
    lines = [LogfmtFormatter().format(r) for r in (first, second)]
    assert token not in "".join(lines) and "SecretFeedToken" not in "".join(lines)
    fields = logfmt(lines[0])
    assert fields["target"] == "/unsubscribe?token=[redacted]" and fields["method"] == "GET"
    assert fields["status"] in ("200", "400") and fields["level"] == "info"
    assert logfmt(lines[1])["status"] == "404"


def test_a_traceback_stays_on_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord(
            "digest.web", logging.ERROR, "x", 1, "crashed", (), sys.exc_info()
        )
    line = LogfmtFormatter().format(record)
    assert "\n" not in line and logfmt(line)["exc"].startswith("Traceback")


def test_tokens_in_any_logged_text_are_redacted() -> None:
    token = tokens.sign(SECRET, "manage", "7")
    try:
        raise OSError("cannot write /srv/public/feeds/FeedTok3n_0123456789.atom")
    except OSError:
        record = logging.LogRecord(
            "digest.run",
            logging.ERROR,
            "x",
            1,
            "GET https://example.org/manage?token=%s&api_key=k3y&days=2 failed",
            (token,),
            sys.exc_info(),
        )
    line = LogfmtFormatter().format(record)
    assert token not in line and "k3y" not in line
    assert "FeedTok3n" not in line and "/feeds/[redacted].atom" in line
    assert logfmt(line)["msg"].endswith("?token=[redacted]&api_key=[redacted]&days=2 failed")


async def test_every_pass_is_logged_with_its_outcome(
    public: Public, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="digest.scheduler")
    await public.service.tick(NOW)
    await public.service.tick(NOW + timedelta(minutes=5))  # nothing due, fetched recently
    outcomes = [
        getattr(r, "fields", {}).get("outcome")
        for r in caplog.records
        if r.name == "digest.scheduler"
    ]
    assert outcomes == ["ok", "idle"]


class Serving:
    """A real ``digest serve`` (no ``-v``) on a free port, its output in ``out``."""

    def __init__(self, tmp: Path, server: SmtpServer, env: dict[str, str] | None = None) -> None:
        from tests.test_serve import free_port, write_config

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = write_config(tmp, server, self.port)
        self.out = tmp / "serve.log"
        environ = {**os.environ, "DIGEST_SECRET": SECRET.decode(), **(env or {})}
        argv = [sys.executable, "-m", "digest", "--config", str(config), "serve"]
        with self.out.open("wb") as sink:
            self.proc = subprocess.Popen(
                [*argv, "--port", str(self.port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=environ,
            )
        self.deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{self.base}/healthz", timeout=2)
                return
            except httpx.TransportError:
                assert time.monotonic() < self.deadline and self.proc.poll() is None, self.text()
                time.sleep(0.1)

    def text(self) -> str:
        return self.out.read_text("utf-8", errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture
def serving(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> Iterator[Callable[..., Serving]]:
    started: list[Serving] = []

    def start(env: dict[str, str] | None = None) -> Serving:
        started.append(Serving(tmp_path, smtp_server(), env))
        return started[-1]

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def test_digest_serve_logs_each_request_and_pass_in_logfmt_by_default(
    serving: Callable[..., Serving],
) -> None:
    token = tokens.sign(SECRET, "unsubscribe", "1")
    s = serving()
    httpx.get(f"{s.base}/unsubscribe?token={token}", timeout=5)
    big = httpx.post(f"{s.base}/subscribe", content=b"x" * 200_000, timeout=5)
    assert big.status_code == 413
    while "logger=digest.scheduler" not in s.text():
        assert time.monotonic() < s.deadline, s.text()
        time.sleep(0.1)
    s.stop()
    text = s.text()
    assert token not in text and "\x1b[" not in text and "Traceback" not in text
    events = [logfmt(line) for line in text.splitlines()]  # every line, the banner too
    assert events[0]["logger"] == "digest.serve" and events[0]["listen"] == s.base
    access = [e for e in events if e["logger"] == "digest.access"]
    assert {(e["method"], e["target"], e["status"]) for e in access} >= {
        ("GET", "/healthz", "200"),
        ("POST", "/subscribe", "413"),
    }, text
    assert any(e["target"] == "/unsubscribe?token=[redacted]" for e in access)
    assert any(e["logger"] == "digest.scheduler" and "outcome" in e for e in events)


def test_digest_serve_stops_reading_a_streamed_body_at_the_limit_and_spools_nothing(
    tmp_path: Path, serving: Callable[..., Serving]
) -> None:
    spool = tmp_path / "spool"  # the server's temporary folder (TMPDIR): where parts spool
    spool.mkdir()
    s = serving({"TMPDIR": str(spool)})
    total = 60 * 1024 * 1024
    sent, answer = 0, b""
    head = (
        "POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    )
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="b"\r\n\r\n'
    chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        sock.sendall(head.encode() + f"{len(part):x}\r\n{part}\r\n".encode())
        try:
            while sent < total:
                readable, writable, _ = select.select([sock], [sock], [], 5)
                if readable or not writable:  # answered (or stuck): stop sending
                    break
                sent += sock.send(chunk)
            answer = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server closed the connection: it read no further
    assert sent < total // 4, sent  # what the socket buffers took, not the 60 MB
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert list(spool.iterdir()) == []
    assert httpx.get(f"{s.base}/healthz", timeout=5).status_code == 200  # still serving
    s.stop()
    assert "target=/subscribe status=413" in s.text()
