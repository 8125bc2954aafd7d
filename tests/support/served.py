"""A test HTTP server's plumbing, shared by the fixture servers: a threading server on
loopback in a daemon thread, and its orderly stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


class GetHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, no Nagle delay, no log lines; each GET goes to
    :attr:`answer` (set by :func:`get_handler`)."""

    protocol_version = "HTTP/1.1"
    answer: Callable[[BaseHTTPRequestHandler], None]

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).answer(self)


def get_handler(
    answer: Callable[[BaseHTTPRequestHandler], None], base: type[GetHandler] = GetHandler
) -> type[GetHandler]:
    """A :class:`GetHandler` (or subclass ``base``) class whose GETs ``answer`` handles."""
    return type("Handler", (base,), {"answer": staticmethod(answer)})


def serve_in_thread(
    handler: type[BaseHTTPRequestHandler], name: str
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """``handler`` served on a free loopback port (each request in a daemon thread), from a
    daemon thread named ``name``."""
    httpd = ThreadingHTTPServer((HOST, 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name=name, daemon=True
    )
    thread.start()
    return httpd, thread


def shut(httpd: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    """Stop what :func:`serve_in_thread` started (either may be None: nothing to stop)."""
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
    if thread is not None:
        thread.join(5)
