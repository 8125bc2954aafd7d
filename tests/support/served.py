"""A test HTTP server's plumbing, shared by the fixture servers: a threading server on
loopback in a daemon thread, and its orderly stop."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"


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
