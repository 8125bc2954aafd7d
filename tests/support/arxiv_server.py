"""A real HTTP server on 127.0.0.1 that answers as arXiv's RSS feeds and query API do
(shared/FORMATS.md §3, §4), and misbehaves on demand.

Usage::

    with ArxivServer(papers=[...], rss=RSS_BYTES) as server:
        source = ArxivSource("arxiv-ml", ["cs.CL"], rss_url=server.rss_url,
                             api_url=server.api_url, min_interval=0)
        server.fail(429, headers={"Retry-After": "1"}, path="/api")

``GET /rss/<cats>`` answers ``rss`` (the bytes of a feed, whatever the categories), with an
``ETag``; a request whose ``If-None-Match`` matches gets 304. ``GET /api/query`` answers an
Atom page of ``papers`` (:class:`Record`) matching ``search_query``'s ``cat:`` terms (``cs.*``
an archive) and its ``submittedDate:[YYYYMMDDHHMM TO YYYYMMDDHHMM]`` (GMT, both minutes
included), sorted by submission, paged by ``start`` and ``max_results``. A negative
``start`` or ``max_results`` gets arXiv's error entry (HTTP 200), ``max_results`` over
30,000 a 400.

Faults (:meth:`ArxivServer.fail`), for the next ``times`` requests whose path starts with
``path``: ``status`` (with an HTML error body unless ``body``), ``body`` (these bytes
instead, with ``status``), ``headers``. What it records: ``requests`` (path and query),
``user_agents``, ``moments`` (``time.monotonic()`` at each request's arrival).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

from tests.support.served import HOST, get_handler, serve_in_thread, shut

ERROR_PAGE = b"<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>"


@dataclass(frozen=True)
class Record:
    """One paper the fake API knows: ``published`` is when v1 was submitted (UTC)."""

    id: str
    title: str
    published: datetime
    primary: str
    categories: tuple[str, ...] = ()
    summary: str = "An abstract."
    authors: tuple[str, ...] = ("Ada Example",)
    version: int = 1
    doi: str | None = None


@dataclass
class Fault:
    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    path: str = ""
    times: int = 1


def _matches(record: Record, cats: Sequence[str]) -> bool:
    for category in (record.primary, *record.categories):
        for cat in cats:
            if (cat.endswith(".*") and category.startswith(cat[:-1])) or category == cat:
                return True
    return False


def _minute(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M").replace(tzinfo=UTC)


def entry_xml(record: Record) -> str:
    """One Atom ``<entry>`` as the 2026 API writes it."""
    ident = f"{record.id}v{record.version}"
    when = record.published.strftime("%Y-%m-%dT%H:%M:%SZ")
    authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in record.authors)
    cats = dict.fromkeys((record.primary, *record.categories))
    categories = "".join(
        f'<category term={quoteattr(c)} scheme="http://arxiv.org/schemas/atom"/>' for c in cats
    )
    doi = f"<arxiv:doi>{escape(record.doi)}</arxiv:doi>" if record.doi else ""
    return (
        f"<entry><id>http://arxiv.org/abs/{ident}</id><updated>{when}</updated>"
        f"<published>{when}</published><title>{escape(record.title)}</title>"
        f"<summary>  {escape(record.summary)}\n</summary>{authors}{doi}"
        f'<link href="https://arxiv.org/abs/{ident}" rel="alternate" type="text/html"/>'
        f'<link title="pdf" href="https://arxiv.org/pdf/{ident}" rel="related"/>'
        f"<arxiv:primary_category term={quoteattr(record.primary)}"
        f' scheme="http://arxiv.org/schemas/atom"/>{categories}</entry>'
    )


def feed_xml(entries: Iterable[str], total: int | None, start: int, per_page: int) -> bytes:
    """An Atom page of the API (``total`` None: the flaky page without totals)."""
    totals = (
        f"<opensearch:totalResults>{total}</opensearch:totalResults>"
        f"<opensearch:startIndex>{start}</opensearch:startIndex>"
        f"<opensearch:itemsPerPage>{per_page}</opensearch:itemsPerPage>"
        if total is not None
        else ""
    )
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"'
        ' xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">'
        "<id>https://arxiv.org/api/FakeHash</id><title>arXiv Query: fake</title>"
        f"<updated>2026-11-10T06:01:12Z</updated>{totals}{''.join(entries)}</feed>"
    ).encode()


def error_xml(message: str) -> bytes:
    """arXiv's error form: one entry titled ``Error`` with the message as its summary."""
    slug = re.sub(r"\W+", "_", message)
    entry = (
        f"<entry><id>http://arxiv.org/api/errors#{slug}</id><title>Error</title>"
        f"<summary>{escape(message)}</summary><author><name>arXiv api core</name></author>"
        "</entry>"
    )
    return feed_xml([entry], 1, 0, 1)


class ArxivServer:
    """A fake of rss.arxiv.org and export.arxiv.org/api/query on ``HOST`` and a free port."""

    def __init__(self, papers: Iterable[Record] = (), *, rss: bytes = b"") -> None:
        self.papers = list(papers)
        self.rss = rss
        self.requests: list[str] = []
        self.user_agents: list[str] = []
        self.moments: list[float] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    @property
    def rss_url(self) -> str:
        return self.url + "/rss/"

    @property
    def api_url(self) -> str:
        return self.url + "/api/query"

    def fail(
        self,
        status: int = 200,
        *,
        times: int = 1,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        path: str = "",
    ) -> None:
        """Misbehave on the next ``times`` requests to ``path``... (see the module)."""
        with self._lock:
            self.faults.append(Fault(status, body, dict(headers or {}), path, times))

    def api(self, query: str) -> tuple[int, bytes]:
        """What the API answers to a query string."""
        params = parse_qs(query)
        search = (params.get("search_query") or [""])[0]
        try:
            start = int((params.get("start") or ["0"])[0])
            per_page = int((params.get("max_results") or ["10"])[0])
        except ValueError:
            return 200, error_xml("start and max_results must be integers")
        if start < 0:
            return 200, error_xml("start must be non-negative")
        if per_page < 0:
            return 200, error_xml("max_results must be non-negative")
        if per_page > 30000:
            return 400, ERROR_PAGE
        cats = re.findall(r"cat:([\w.\-*]+)", search)
        window = re.search(r"submittedDate:\[(\d{12}) TO (\d{12})\]", search)
        found = [r for r in self.papers if _matches(r, cats)]
        if window:
            low, high = _minute(window.group(1)), _minute(window.group(2))
            found = [r for r in found if low <= r.published < high + timedelta(minutes=1)]
        found.sort(key=lambda r: r.published)
        chunk = found[start : start + per_page]
        return 200, feed_xml((entry_xml(r) for r in chunk), len(found), start, per_page)

    def _fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and path.startswith(fault.path):
                    fault.times -= 1
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(handler.path)
            self.user_agents.append(handler.headers.get("User-Agent", ""))
            self.moments.append(time.monotonic())
        parts = urlsplit(handler.path)
        fault = self._fault(parts.path)
        headers: dict[str, str] = {}
        if fault is not None and (fault.body is not None or fault.status != 200):
            status, body = fault.status, fault.body if fault.body is not None else ERROR_PAGE
        elif parts.path.startswith("/rss/"):
            etag = '"' + hashlib.sha256(self.rss).hexdigest()[:16] + '"'
            headers["ETag"] = etag
            status, body = 200, self.rss
            if handler.headers.get("If-None-Match") == etag:
                status, body = 304, b""
        elif parts.path == "/api/query":
            status, body = self.api(parts.query)
        else:
            status, body = 404, ERROR_PAGE
        headers.update(fault.headers if fault else {})
        handler.send_response(status)
        kind = "text/html" if body.lstrip()[:2] in (b"<!", b"<h") else "application/xml"
        handler.send_header("Content-Type", f"{kind}; charset=utf-8")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def start(self) -> ArxivServer:
        self._httpd, self._thread = serve_in_thread(get_handler(self._handle), "test-arxiv-server")
        return self

    def stop(self) -> None:
        shut(self._httpd, self._thread)
        self._httpd, self._thread = None, None

    def __enter__(self) -> ArxivServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["HOST", "ArxivServer", "Record", "entry_xml", "error_xml", "feed_xml"]
