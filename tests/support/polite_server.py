"""A real HTTP server on 127.0.0.1 that watches how politely it is fetched: when each request
started and ended, which headers it carried, how many connections were open at once.

Usage::

    with PoliteServer(delay=0.1) as server:
        server.answer(503, headers={"Retry-After": "1"})   # the next request gets this
        ...
        assert server.max_connections == 1
        assert min(server.gaps()) >= 0.5

Every path answers ``body`` with ``ETag: <etag>`` and ``Last-Modified: <last_modified>``
(each left out when None); a request whose ``If-None-Match`` is the ``etag`` gets 304.
Queued answers (:meth:`answer`) come first, in order. Times are ``time.time()`` of this
process, so requests from several processes are on one clock; a request is noted (its end
time too) just before its answer is sent, so it is in ``seen`` when the client has it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.served import HOST, GetHandler, get_handler, serve_in_thread, shut


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    path: str
    headers: Mapping[str, str]
    started: float
    ended: float
    status: int


@dataclass
class Queued:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b"queued answer"

    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class PoliteServer:
    """See the module docstring; ``delay`` seconds pass before each answer."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        body: bytes = b"<rss><channel><title>invented</title></channel></rss>",
        etag: str | None = '"listing-1"',
        last_modified: str | None = "Mon, 07 Dec 2026 08:00:00 GMT",
    ) -> None:
        self.delay = delay
        self.body = body
        self.etag = etag
        self.last_modified = last_modified
        self.seen: list[Seen] = []
        self.connections = 0
        self.max_connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: list[Queued] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://{HOST}:{self._httpd.server_address[1]}/feed.xml"

    def answer(self, status: int, *, headers: Mapping[str, str] | None = None) -> None:
        """The next request not yet answered gets ``status`` (and ``headers``)."""
        with self._lock:
            self._queue.append(Queued(status, dict(headers or {})))

    def gaps(self) -> list[float]:
        """Seconds from the end of each request to the start of the next, in start order."""
        ordered = sorted(self.seen, key=lambda s: s.started)
        return [b.started - a.ended for a, b in itertools.pairwise(ordered)]

    def _count(self, name: str, step: int) -> None:
        with self._lock:
            value = getattr(self, name) + step
            setattr(self, name, value)
            peak = "max_" + name
            setattr(self, peak, max(getattr(self, peak), value))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.time()
        self._count("in_flight", 1)
        try:
            status, headers, body = self._reply(handler)
            if self.delay:
                time.sleep(self.delay)
            # Noted before the answer leaves: a client cannot have read it earlier, so the
            # gaps measured here are never longer than the client's own.
            seen = Seen(handler.path, dict(handler.headers.items()), started, time.time(), status)
            with self._lock:
                self.seen.append(seen)
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            handler.wfile.flush()
        finally:
            self._count("in_flight", -1)

    def _reply(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            queued = self._queue.pop(0) if self._queue else None
        if queued is not None:
            return queued.status, dict(queued.headers), queued.body
        headers = {"Content-Type": "application/rss+xml"}
        if self.etag is not None:
            headers["ETag"] = self.etag
        if self.last_modified is not None:
            headers["Last-Modified"] = self.last_modified
        if self.etag is not None and handler.headers.get("If-None-Match") == self.etag:
            return 304, headers, b""
        return 200, headers, self.body

    def start(self) -> PoliteServer:
        server = self

        class Counted(GetHandler):  # counts open connections
            def setup(self) -> None:
                super().setup()
                server._count("connections", 1)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    server._count("connections", -1)

        self._httpd, self._thread = serve_in_thread(
            get_handler(self._handle, Counted), "test-polite-server"
        )
        return self

    def stop(self) -> None:
        shut(self._httpd, self._thread)
        self._httpd, self._thread = None, None

    def __enter__(self) -> PoliteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["HOST", "PoliteServer", "Seen"]
