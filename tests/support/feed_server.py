"""A real HTTP server on 127.0.0.1 that serves feeds (any bytes, any Content-Type) by path,
and fails on demand.

Usage::

    with FeedServer() as server:
        url = server.serve("/neuro.rss", body, content_type="text/xml; charset=iso-8859-1")
        server.fail("/neuro.rss", 503, times=2, headers={"Retry-After": "0"})
        ...
        assert server.requests == ["/neuro.rss", ...]

A path not served is a 404 with a small HTML page. A route served with an ``ETag`` header
answers a request whose ``If-None-Match`` names it with 304 Not Modified. ``requests``,
``user_agents``, ``accepts`` and ``conditions`` (the ``If-None-Match`` sent, or "") record
every request in order; ``times`` when each arrived (``time.monotonic()``). The server runs in
a background thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.served import HOST, get_handler, serve_in_thread, shut


@dataclass
class Route:
    """What a path answers: ``status``, ``body`` and ``Content-Type`` (None: no header)."""

    body: bytes
    content_type: str | None = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)

    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class FeedServer:
    """Feeds by path on ``HOST`` and a free port."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.faults: dict[str, list[Route]] = {}
        self.requests: list[str] = []
        self.user_agents: list[str] = []
        self.accepts: list[str] = []
        self.conditions: list[str] = []
        self.times: list[float] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    def serve(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str | None = "application/rss+xml; charset=utf-8",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Answer ``GET path`` with ``body``; returns the full URL."""
        with self._lock:
            self.routes[path] = Route(body, content_type, status, dict(headers or {}))
        return self.base + path

    def fail(
        self,
        path: str,
        status: int,
        *,
        times: int = 1,
        body: bytes = b"<html><body><h1>Service Unavailable</h1></body></html>",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next ``times`` requests of ``path`` get ``status`` (then the route again)."""
        with self._lock:
            queue = self.faults.setdefault(path, [])
            queue.extend(
                Route(body, "text/html", status, dict(headers or {})) for _ in range(times)
            )

    def _route(self, path: str) -> Route:
        with self._lock:
            queue = self.faults.get(path)
            if queue:
                return queue.pop(0)
            found = self.routes.get(path)
        if found is None:
            return Route(b"<html><body>Not Found</body></html>", "text/html", 404)
        return found

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(handler.path)
            self.user_agents.append(handler.headers.get("User-Agent", ""))
            self.accepts.append(handler.headers.get("Accept", ""))
            self.conditions.append(handler.headers.get("If-None-Match", ""))
            self.times.append(time.monotonic())
        route = self._route(handler.path)
        etag = route.headers.get("ETag")
        if route.status == 200 and etag and handler.headers.get("If-None-Match") == etag:
            route = Route(b"", None, 304, {"ETag": etag})
        handler.send_response(route.status)
        if route.content_type is not None:
            handler.send_header("Content-Type", route.content_type)
        for name, value in route.headers.items():
            handler.send_header(name, value)
        if route.status != 304:
            handler.send_header("Content-Length", str(len(route.body)))
        handler.end_headers()
        handler.wfile.write(route.body)

    def start(self) -> FeedServer:
        self._httpd, self._thread = serve_in_thread(get_handler(self._handle), "test-feed-server")
        return self

    def stop(self) -> None:
        shut(self._httpd, self._thread)
        self._httpd, self._thread = None, None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["HOST", "FeedServer", "Route"]
