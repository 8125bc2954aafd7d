"""The feed files over HTTP: the public pair and each subscriber's private pair, with ETags
and conditional GET (RFC 9110). A private feed is served with its reader's own "more like
this" and "less like this" links (:func:`~digest.compose.feedback.personalise`)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]  # feedgen's dependency
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.compose import load_feed_stylesheet
from digest.compose.feedback import personalise
from digest.errors import DigestError
from digest.models import Subscriber
from digest.run import follows, publish_private
from digest.serve.pages import SECURITY_HEADERS, TOKEN_SHAPE, Handlers, Site

log = logging.getLogger("digest.web")
#: A source's name (``[[sources]] name``): its own feed is ``/feeds/<name>.xml|.atom``.
SOURCE_NAME = re.compile(r"^[a-z0-9-]{1,64}$")


class Feeds(Handlers):
    """The feed routes; ETags cached by file, size and modification time."""

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self._etags: dict[tuple[str, int, int], str] = {}
        self._stylesheet: bytes | None = None
        self._xslt: etree.XSLT | None = None

    def etag_of(self, path: Path, size: int, mtime_ns: int) -> str:
        key = (str(path), size, mtime_ns)
        tag = self._etags.get(key)
        if tag is None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
            tag = self._etags[key] = f'"{digest}"'
            if len(self._etags) > 20_000:
                self._etags.clear()
        return tag

    def serve_file(
        self, request: Request, path: Path, kind: str, private: bool, reader: int | None = None
    ) -> Response:
        """The feed file ``path``; ``reader``: the id of the subscriber whose private feed
        it is, whose own feedback links it then carries (:func:`personalise`)."""
        try:
            stat = path.stat()
            etag = self.etag_of(path, stat.st_size, stat.st_mtime_ns)
        except OSError:
            return self.site.not_found()
        if reader is not None:  # their own links in it: their own tag
            mine = hashlib.sha256(self.site.secret + b"\0" + str(reader).encode()).hexdigest()
            etag = f'{etag[:-1]}-{mine[:12]}"'
        modified = datetime.fromtimestamp(int(stat.st_mtime), UTC)
        if for_a_browser(request):  # another representation: another tag
            etag = etag[:-1] + '-page"'
        headers = {
            "ETag": etag,
            "Last-Modified": format_datetime(modified, usegmt=True),
            "Cache-Control": f"{'private' if private else 'public'}, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Vary": "Accept",
        }
        if not_modified(request, etag, modified):
            return Response(status_code=304, headers=headers)
        media = "application/atom+xml" if kind == "atom" else "application/rss+xml"
        try:
            body = path.read_bytes()
        except OSError:
            return self.site.not_found()
        if reader is not None:
            body = personalise(body, self.site.secret, reader)
        if for_a_browser(request):
            page = self.page_of(body, str(request.url.replace(query="")))
            return HTMLResponse(page, headers={**headers, **SECURITY_HEADERS})
        return Response(body, media_type=f"{media}; charset=utf-8", headers=headers)

    def page_of(self, feed: bytes, address: str) -> bytes:
        """The feed as the page ``feed/feed.xsl`` makes of it, ``address`` shown to copy."""
        if self._xslt is None:
            if self._stylesheet is None:
                self._stylesheet = load_feed_stylesheet(self.config.templates_dir)
            self._xslt = etree.XSLT(etree.fromstring(self._stylesheet))
        result = self._xslt(etree.fromstring(feed), address=etree.XSLT.strparam(address))
        return bytes(result)

    async def stylesheet(self, request: Request) -> Response:
        """``feed/feed.xsl`` (the operator's, else ours; read once): what a browser shows of
        a feed, named by each feed's ``<?xml-stylesheet?>``."""
        if self._stylesheet is None:
            self._stylesheet = load_feed_stylesheet(self.config.templates_dir)
        return Response(
            self._stylesheet,
            media_type="text/xsl; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    async def public_feed(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        return self.serve_file(request, self.config.feeds.dir / f"feed.{kind}", kind, False)

    async def private_feed(self, request: Request) -> Response:
        token, kind = request.path_params["token"], request.path_params["kind"]
        # A source's feed (run.publish.source_feed_paths) is a file; a private feed, a link.
        path = self.config.feeds.dir / "feeds" / f"{token}.{kind}"
        if SOURCE_NAME.match(token) and path.is_file() and not path.is_symlink():
            return self.serve_file(request, path, kind, False)
        if not TOKEN_SHAPE.match(token):
            return self.site.not_found()
        sub = self.store.members.subscriber_by_token(token)
        if sub is None or sub.status not in ("active", "paused"):
            return self.site.not_found()  # unknown, or gone: even before its file is removed
        if not follows_queries(path, sub) and not refresh_private(self.site, sub):
            return Response(
                "Your feed is being prepared; try again in a minute.\n",
                status_code=503,
                headers={"Retry-After": "60"},
            )
        return self.serve_file(request, path, kind, True, sub.id)


def follows_queries(path: Path, sub: Subscriber) -> bool:
    """Whether the private feed link ``path`` is there and points at the feed of ``sub``'s
    present queries (not the old ones, changed since by the manage page or the CLI)."""
    try:
        return follows(os.readlink(path), sub, path.suffix) and path.exists()
    except OSError:
        return False


def refresh_private(site: Site, sub: Subscriber) -> bool:
    """Write ``sub``'s private feed now (just confirmed, queries just changed, or its file
    missing), and have the next pass rewrite the others; False (logged) when it cannot be
    written."""
    site.feeds_changed()
    if sub.status not in ("active", "paused"):
        return False
    try:
        publish_private(site.config, site.store, sub, site.clock())
    except DigestError as exc:  # feeds.dir not writable, an operator's template broken
        log.warning("private feed not written: %s", exc)
        return False
    return True


def for_a_browser(request: Request) -> bool:
    """Whether the request is a browser opening the feed as a page: it asks for HTML and
    names no feed type. It gets the page ``feed/feed.xsl`` makes of the feed, made here:
    Chromium shows ``application/rss+xml`` and ``application/atom+xml`` as raw text, and
    XSLT in browsers is going away (Chromium 156 covers such a page with a warning). Feed
    readers name the feed types (or send ``*/*``, or nothing) and get the feed."""
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept and "rss+xml" not in accept and "atom+xml" not in accept


def not_modified(request: Request, etag: str, modified: datetime) -> bool:
    """RFC 9110 §13.1: If-None-Match wins over If-Modified-Since; weak comparison."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        given = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return etag in given
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return modified <= since
    return False
