"""A real HTTP server on 127.0.0.1 that serves listings as the Hugging Face API does, and
misbehaves on demand.

Usage::

    with ListingServer(directory=FIXTURES, today=date(2026, 11, 23)) as server:
        source = HttpSource(server.url)          # http://127.0.0.1:PORT/api/daily_papers
        server.fail(503, times=2)                # the next two requests get 503
        ...
        assert server.requests[0] == "/api/daily_papers?date=2026-11-18&limit=100&p=0"

or, in a test, the ``make_listing_server`` fixture: ``server = make_listing_server({"2026-11-18":
[...]}, today=...)`` (started, and stopped after the test). The server runs in a background
thread (``http.server.ThreadingHTTPServer``), so it serves async tests, sync tests and
subprocesses alike.

Listings come from ``days`` (``{"2026-11-18": [element, ...]}``, changeable while running)
or from ``directory`` (``2026-11-18.json`` files); a date with neither is an empty list, as on
weekends.

What the real API does, and this one too: ``GET /api/daily_papers?date=YYYY-MM-DD&limit=N&p=P``
answers 400 with ``{"error": ...}`` for a malformed date, one after ``today``, or a ``limit``
or ``p`` that is not a number (or below 1, below 0); ``limit`` defaults to 50 and is clamped
to ``max_limit`` (100); ``p`` is a 0-based page; while more pages remain, a relative
``Link: </api/daily_papers?...&p=P+1>; rel="next"`` header points to the next one
(``link=False`` leaves it out). Any other path is a 404.

Faults (:meth:`ListingServer.fail`), each for the next ``times`` requests, in the order
added, combinable:

``status``   answer this status instead (``fail(503)``); with no ``body``, a JSON error
``body``     these bytes instead of the listing, with ``status`` (200 by default): an HTML
             page, truncated JSON, a JSON object, wrong types
``headers``  extra response headers (``fail(429, headers={"Retry-After": "3"})``; a
             ``Link`` header on a normal page)
``delay``    seconds to wait before answering (client timeouts)
``drop``     ``"before-response"`` (or ``True``): close the connection without a word;
             ``"mid-body"``: send the headers and half the body, then close
``size``     pad the JSON listing with spaces to at least this many bytes (oversized)
``chunked``  send the body chunked, without ``Content-Length`` (so a client must count)

What it records: ``requests`` (path and query of every request, in order) and
``user_agents``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

HOST = "127.0.0.1"
PATH = "/api/daily_papers"
Drop = Literal["before-response", "mid-body"]


@dataclass
class Fault:
    """How the server answers one request; see the module docstring."""

    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: Drop | None = None
    size: int = 0
    chunked: bool = False
    times: int = 1


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a handler sleeping through a delay

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is what some tests are about


class ListingServer:
    """A fake of the Hugging Face daily papers API on ``HOST`` and a free port."""

    def __init__(
        self,
        days: Mapping[str, Sequence[Any]] | None = None,
        *,
        directory: Path | None = None,
        today: date | None = None,
        max_limit: int = 100,
        link: bool = True,
    ) -> None:
        self.days: dict[str, Sequence[Any]] = dict(days or {})
        self.directory = directory
        self.today = today or date.today()
        self.max_limit = max_limit
        self.link = link
        self.requests: list[str] = []
        self.user_agents: list[str] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The listing endpoint, ``http://127.0.0.1:PORT/api/daily_papers``."""
        assert self._httpd is not None, "start the server first"
        return f"http://{HOST}:{self._httpd.server_address[1]}{PATH}"

    def fail(
        self,
        status: int = 200,
        *,
        times: int = 1,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        drop: Drop | bool | None = None,
        size: int = 0,
        chunked: bool = False,
    ) -> None:
        """Misbehave on the next ``times`` requests (see the module docstring)."""
        how: Drop | None = "before-response" if drop is True else (drop or None)
        fault = Fault(status, body, dict(headers or {}), delay, how, size, chunked, times)
        with self._lock:
            self.faults.append(fault)

    def listing(self, day: str) -> list[Any]:
        """The elements served for ``day``."""
        if day in self.days:
            return list(self.days[day])
        if self.directory is not None:
            file = self.directory / f"{day}.json"
            if file.exists():
                loaded: list[Any] = json.loads(file.read_text("utf-8"))
                return loaded
        return []

    def answer(self, target: str) -> Answer:
        """What the API answers to ``GET target`` (path and query), faults aside."""
        parts = urlsplit(target)
        if parts.path != PATH:
            return _error(404, "Not Found")
        query = parse_qs(parts.query)
        raw_day = (query.get("date") or [""])[0]
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            return _error(400, f"Invalid date: {raw_day!r}")
        if day > self.today:
            return _error(400, "Date cannot be in the future")
        try:
            limit = int((query.get("limit") or ["50"])[0])
            page = int((query.get("p") or ["0"])[0])
        except ValueError:
            return _error(400, "limit and p must be integers")
        if limit < 1 or page < 0:
            return _error(400, "limit must be >= 1 and p >= 0")
        limit = min(limit, self.max_limit)
        items = self.listing(day.isoformat())
        chunk = items[page * limit : (page + 1) * limit]
        headers: dict[str, str] = {}
        if self.link and (page + 1) * limit < len(items):
            more = urlencode({"date": raw_day, "limit": limit, "p": page + 1})
            headers["Link"] = f'<{PATH}?{more}>; rel="next"'
        return Answer(200, json.dumps(chunk, ensure_ascii=False).encode("utf-8"), headers)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            while self.faults and self.faults[0].times <= 0:
                self.faults.pop(0)
            if not self.faults:
                return None
            self.faults[0].times -= 1
            return self.faults[0]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(handler.path)
            self.user_agents.append(handler.headers.get("User-Agent", ""))
        fault = self._next_fault() or Fault()
        if fault.delay and self._stopping.wait(fault.delay):
            return
        if fault.drop == "before-response":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.body is not None or fault.status != 200:
            body = fault.body if fault.body is not None else b'{"error":"injected fault"}'
            answer = Answer(fault.status, body, {})
        else:
            answer = self.answer(handler.path)
        body = answer.body
        if fault.size > len(body) and body.endswith(b"]"):
            body = body[:-1] + b" " * (fault.size - len(body)) + b"]"
        headers = {**answer.headers, **fault.headers}
        handler.send_response(answer.status)
        kind = "text/html" if body.lstrip()[:1] == b"<" else "application/json"
        handler.send_header("Content-Type", f"{kind}; charset=utf-8")
        for name, value in headers.items():
            handler.send_header(name, value)
        if fault.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            for start in range(0, len(body), 16_384):
                piece = body[start : start + 16_384]
                handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            handler.wfile.write(b"0\r\n\r\n")
            return
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if fault.drop == "mid-body":
            handler.wfile.write(body[: len(body) // 2])
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(body)

    def start(self) -> ListingServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; with Nagle's algorithm the second
                # waits for the client's delayed ACK (40 ms a request on Linux).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self._stopping.clear()
        self._httpd = _Server((HOST, 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="test-listing-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> ListingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _error(status: int, message: str) -> Answer:
    return Answer(status, json.dumps({"error": message}).encode(), {})


@pytest.fixture
def make_listing_server() -> Iterator[Callable[..., ListingServer]]:
    """A factory of started :class:`ListingServer` (same arguments), all stopped after the
    test."""
    started: list[ListingServer] = []

    def make(*args: Any, **options: Any) -> ListingServer:
        server = ListingServer(*args, **options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


__all__ = ["HOST", "PATH", "Answer", "Fault", "ListingServer", "make_listing_server"]
