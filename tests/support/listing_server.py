"""A real HTTP server on 127.0.0.1 that serves listings as the Hugging Face API does, and
misbehaves on demand.

Usage::

    with ListingServer(directory=FIXTURES, today=date(2026, 11, 23)) as server:
        source = HttpSource(server.url)          # .../api/daily_papers
        server.fail(503, times=2)                # the next two requests get 503
        ...
        assert server.requests[0] == "/api/daily_papers?date=2026-11-18&limit=100&p=0"

Listings come from ``days`` (``{"2026-11-18": [element, ...]}``) or from ``directory``
(``2026-11-18.json`` files); a date with neither is an empty list, as on weekends.

What the real API does, and this one too: ``GET /api/daily_papers?date=YYYY-MM-DD&limit=N&p=P``
answers 400 for a malformed date or one after ``today``; ``limit`` defaults to 50 and is
clamped to 100; ``p`` is a 0-based page; while more pages remain, a ``Link: <…>; rel="next"``
header points to the next one.

Faults (:meth:`fail`), each for the next ``times`` requests, in the order added:
``status`` with ``body`` and ``headers`` (``fail(429, headers={"Retry-After": "3"})``);
``body`` with status 200 replaces the JSON (an HTML page, truncated JSON); ``delay`` seconds
before answering (timeouts); ``drop=True`` closes the connection without an answer;
``size`` bytes of padding make an oversized response.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PATH = "/api/daily_papers"


@dataclass
class Fault:
    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] | None = None
    delay: float = 0.0
    drop: bool = False
    size: int = 0
    times: int = 1


class ListingServer:
    """See the module docstring."""

    def __init__(
        self,
        days: Mapping[str, Sequence[Any]] | None = None,
        *,
        directory: Path | None = None,
        today: date | None = None,
    ) -> None:
        self.days = dict(days or {})
        self.directory = directory
        self.today = today or date.today()
        self.requests: list[str] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{PATH}"

    def fail(self, status: int = 200, *, times: int = 1, **options: Any) -> None:
        """Misbehave on the next ``times`` requests (see the module docstring)."""
        with self._lock:
            self.faults.append(Fault(status=status, times=times, **options))

    def listing(self, day: str) -> list[Any]:
        if day in self.days:
            return list(self.days[day])
        if self.directory is not None:
            file = self.directory / f"{day}.json"
            if file.exists():
                loaded: list[Any] = json.loads(file.read_text("utf-8"))
                return loaded
        return []

    def _next_fault(self) -> Fault | None:
        with self._lock:
            while self.faults:
                fault = self.faults[0]
                if fault.times <= 0:
                    self.faults.pop(0)
                    continue
                fault.times -= 1
                return fault
        return None

    def start(self) -> ListingServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(self.path)
                fault = server._next_fault()
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault.status != 200 or fault.body is not None:
                        body = fault.body if fault.body is not None else b'{"error":"fault"}'
                        self._send(fault.status, body, fault.headers or {})
                        return
                self._serve(fault.size if fault else 0)

            def _serve(self, padding: int) -> None:
                parts = urlsplit(self.path)
                if parts.path != PATH:
                    self._send(404, b'{"error":"Not Found"}', {})
                    return
                query = parse_qs(parts.query)
                raw_day = (query.get("date") or [""])[0]
                try:
                    day = date.fromisoformat(raw_day)
                except ValueError:
                    self._send(400, b'{"error":"Invalid date"}', {})
                    return
                if day > server.today:
                    self._send(400, b'{"error":"Date is in the future"}', {})
                    return
                try:
                    limit = min(int((query.get("limit") or ["50"])[0]), 100)
                    page = int((query.get("p") or ["0"])[0])
                except ValueError:
                    self._send(400, b'{"error":"Invalid limit or page"}', {})
                    return
                items = server.listing(day.isoformat())
                chunk = items[page * limit : (page + 1) * limit]
                headers: dict[str, str] = {}
                if (page + 1) * limit < len(items):
                    more = urlencode({"date": raw_day, "limit": limit, "p": page + 1})
                    headers["Link"] = f'<{PATH}?{more}>; rel="next"'
                body = json.dumps(chunk, ensure_ascii=False).encode("utf-8")
                if padding:
                    body = (
                        body[:-1] + b" " * padding + b"]" if chunk else b"[" + b" " * padding + b"]"
                    )
                self._send(200, body, headers)

            def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
                self.send_response(status)
                kind = "text/html" if body.lstrip()[:1] == b"<" else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ListingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
