"""One HTTP edge for every listing source: timeouts, retries on 429 and 5xx honouring
``Retry-After``, a size limit, a descriptive User-Agent with the operator's contact, the
per-host gate (:mod:`digest.sources.gate`: arXiv's one request every 3 s, one connection at a
time) and conditional GETs (a 304 is :class:`NotModified`); httpx errors leave as
:class:`SourceError` naming the URL (without secrets), ``raise … from exc``.

A source supplies the URLs and parses the bytes; :class:`HttpEdge` does the politeness. The
retry and link policy are the pure functions at the top (:func:`default_user_agent`,
:func:`retryable`, :func:`retry_after_seconds`, :func:`backoff_delay`, :func:`next_link`,
:func:`public_url`, :func:`excerpt`).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr, parsedate_to_datetime
from functools import cache
from pathlib import Path
from ssl import SSLContext
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from digest import __version__
from digest.errors import SourceError
from digest.sources.gate import HostGate, effective_interval, gate_key

MAX_RETRY_AFTER = 300.0  # seconds; a server asking for longer fails the run instead
MAX_BACKOFF = 60.0  # our own waits between attempts never exceed this
DEFAULT_MAX_BYTES = 20_000_000
_EXCERPT_BYTES = 4_000  # read of an error response's body, for the message
_SECRET_PARAMS = frozenset(
    {"token", "access_token", "api_key", "apikey", "key", "secret", "password", "sig", "signature"}
)


_PRINTABLE = re.compile(r"[\x20-\x7e]+")


def default_user_agent(contact: str | None = None) -> str:
    """The User-Agent when the config sets none: ``paper-digest/<version>``, plus the
    operator's contact when given (``mail.from``'s address, or a URL), as arXiv and others
    ask: ``default_user_agent("ops@example.org")`` is
    ``"paper-digest/0.1.0 (mailto:ops@example.org)"``."""
    agent = f"paper-digest/{__version__}"
    text = " ".join((contact or "").split())
    if "<" in text:
        text = parseaddr(text)[1] or text
    text = "".join(c for c in text if _PRINTABLE.fullmatch(c) and c not in "()")
    if not text:
        return agent
    return f"{agent} (+{text})" if "://" in text else f"{agent} (mailto:{text})"


def retryable(status: int) -> bool:
    """Whether an HTTP status is worth another attempt: 429 and every 5xx."""
    return status == 429 or 500 <= status <= 599


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """The wait a ``Retry-After`` header asks for (RFC 9110 §10.2.3), or None without one.

    ``value`` is seconds (``"120"``) or an HTTP date, measured from ``now`` (the response's
    own ``Date`` when it has one, so the two clocks need not agree). A date past is 0.
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, backoff: float, jitter: float = 0.0) -> float:
    """Seconds before retry ``attempt`` (1-based): ``backoff`` doubled each time, plus up to
    half again as jitter (``jitter`` in [0, 1)), at most :data:`MAX_BACKOFF`."""
    base = min(backoff * 2.0 ** min(attempt - 1, 30), MAX_BACKOFF)
    return min(base * (1.0 + jitter / 2.0), MAX_BACKOFF)


_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*(?:[^;,"]|"[^"]*")*)*)')
_LINK_PARAM = re.compile(r';\s*([^\s=;,]+)\s*(?:=\s*("[^"]*"|[^;,]*))?')


def next_link(header: str | None, base: str) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), resolved against ``base``.

    ``next_link('</api?p=2>; rel="next"', "https://h/api?p=1")`` is ``"https://h/api?p=2"``.
    """
    if not header:
        return None
    for match in _LINK.finditer(header):
        for name, value in _LINK_PARAM.findall(match.group(2)):
            if name.lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                try:
                    return str(httpx.URL(base).join(match.group(1).strip()))
                except httpx.InvalidURL:
                    return None
    return None


def public_url(url: str) -> str:
    """``url`` safe for messages and logs: no user or password, secret-looking parameters
    (``token``, ``api_key``, ...) masked."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            masked = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
            query = urlencode(masked, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def excerpt(body: bytes, size: int = 160) -> str:
    """A short one-line text of an error response: its JSON ``error``, or its text without
    HTML tags, cut to ``size`` characters."""
    text = body.decode("utf-8", "replace")
    try:
        document: Any = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        text = document["error"]
    else:
        text = _TAGS.sub(" ", text)
    line = " ".join(text.split())
    return line if len(line) <= size else line[: size - 1] + "…"


def status_hint(status: int) -> str | None:
    """The hint for a refusal any listing server may give (a source can add its own)."""
    if status == 404:
        return "check source.url in the config"
    if status in (401, 403):
        return "the server refuses access; check source.url"
    return None


@cache
def _tls_context() -> SSLContext:
    # httpx builds a fresh one (reading the CA bundle: ~40 ms) per client unless given one.
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class Page:
    """One successful response: its (decoded) body and its ``Link: <…>; rel="next"`` target."""

    body: bytes
    next: str | None


class NotModified(Exception):
    """A conditional GET was answered 304 Not Modified: what was stored from ``url`` last
    time is still current (not a failure: the run keeps the stored listing)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"{public_url(url)} is not modified since the last fetch")
        self.url = url


#: url -> (ETag, Last-Modified) of its last 200, for conditional GETs.
Validators = MutableMapping[str, tuple[str | None, str | None]]


@dataclass(frozen=True)
class _Retry:
    """A failed attempt worth another: why, and the server's ``Retry-After`` if any."""

    reason: str
    cause: BaseException | None = None
    retry_after: str | None = None
    server_now: datetime | None = None


class HttpEdge:
    """GETs for a listing source, politely.

    Timeouts, connection errors, 5xx and 429 are retried up to ``max_retries`` times with
    exponential backoff and jitter, or after the server's ``Retry-After`` (one longer than
    ``max_retry_after`` fails at once). Other 4xx fail at once with the status and an excerpt
    of the body. A body over ``max_bytes`` is refused. Use: ``async with edge.client() as
    client``, then :meth:`get` each URL on it.

    Politeness: requests to a host with a minimum interval (``min_interval``, None for the
    host's own: 3 s for arXiv, see :mod:`digest.sources.gate`, never below it) go through
    that host's gate in ``gate_dir``: one at a time across processes, each on a connection of
    its own closed at its end, the next ``min_interval`` after the last ended; a wait before
    a retry holds every process off. ``user_agent`` None is :func:`default_user_agent`.
    With ``validators`` (url -> (ETag, Last-Modified), updated by each 200), a URL found in
    it is fetched conditionally and a 304 raises :class:`NotModified`.

    ``hint`` gives the hint of a refusal by its status. ``transport`` and ``sleep`` are seams
    for tests (an ``httpx.MockTransport``, a sleep that records its delays).
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        max_retry_after: float = MAX_RETRY_AFTER,
        accept: str = "application/json",
        hint: Callable[[int], str | None] = status_hint,
        user_agent: str | None = None,
        min_interval: float | None = None,
        gate_dir: Path | str | None = None,
        validators: Validators | None = None,
    ) -> None:
        if min_interval is not None and min_interval < 0:
            raise ValueError("min_interval must be >= 0")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_bytes = max_bytes
        self.transport = transport
        self.sleep = sleep or asyncio.sleep
        self.max_retry_after = max_retry_after
        self.accept = accept
        self.hint = hint
        self.user_agent = user_agent or default_user_agent(None)
        if not _PRINTABLE.fullmatch(self.user_agent):
            raise ValueError(f"user_agent must be printable ASCII: {self.user_agent!r}")
        self.min_interval = min_interval
        self.gate_dir = gate_dir
        self.validators = validators
        self._gates: dict[tuple[str, float], HostGate] = {}

    def client(self) -> httpx.AsyncClient:
        """A client for one listing's requests (close it: ``async with``)."""
        return httpx.AsyncClient(
            timeout=self.timeout,
            headers={"User-Agent": self.user_agent, "Accept": self.accept},
            follow_redirects=True,
            transport=self.transport,
            verify=_tls_context() if self.transport is None else True,
        )

    def gate(self, url: str) -> HostGate | None:
        """The gate requests to ``url`` go through, or None for a host without an interval."""
        interval = effective_interval(url, self.min_interval)
        if interval <= 0:
            return None
        key = (gate_key(url), interval)
        if key not in self._gates:
            self._gates[key] = HostGate(key[0], interval, self.gate_dir)
        return self._gates[key]

    async def get(self, client: httpx.AsyncClient, url: str) -> Page:
        """One page's body and its next link, retrying what is worth retrying; raises
        :class:`SourceError`, or :class:`NotModified` for a conditional GET's 304."""
        shown = public_url(url)
        gate = self.gate(url)
        attempt = 0
        while True:
            attempt += 1
            turn = gate.slot() if gate is not None else nullcontext(None)
            async with turn as slot:
                outcome = await self._attempt(client, url, shown, gated=gate is not None)
                if isinstance(outcome, Page):
                    return outcome
                wait = self._wait(outcome, attempt, shown)
                if slot is not None:
                    slot.hold_off(wait)
            await self.sleep(wait)

    async def _attempt(
        self, client: httpx.AsyncClient, url: str, shown: str, *, gated: bool
    ) -> Page | _Retry:
        """One request: its page, or why to retry; raises what is not worth a retry."""
        headers = self._conditions(url)
        if gated:  # one connection at a time: none is kept open past its turn
            headers["Connection"] = "close"
        try:
            async with client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status == 304 and ("If-None-Match" in headers or "If-Modified-Since" in headers):
                    raise NotModified(url)
                if response.is_success:
                    body = await self._read(response, shown)
                    self._remember(url, response.headers)
                    return Page(body, next_link(response.headers.get("link"), str(response.url)))
                text = excerpt(await self._read(response, shown, limit=_EXCERPT_BYTES))
                retry_after = response.headers.get("retry-after")
                server_now = _http_date(response.headers.get("date"))
        except httpx.TimeoutException as exc:
            return _Retry(f"no answer within {self.timeout:g} s ({type(exc).__name__})", exc)
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            return _Retry(f"connection failed: {exc or type(exc).__name__}", exc)
        except httpx.HTTPError as exc:  # redirect loop, unsupported scheme, bad encoding...
            raise SourceError(shown, f"{type(exc).__name__}: {exc}") from exc
        except httpx.InvalidURL as exc:
            raise SourceError(shown, f"invalid URL: {exc}") from exc
        reason = f"HTTP {status} {response.reason_phrase}".rstrip()
        if text:
            reason += f": {text}"
        if not retryable(status):
            raise SourceError(shown, reason, hint=self.hint(status))
        return _Retry(reason, None, retry_after, server_now)

    def _wait(self, failed: _Retry, attempt: int, shown: str) -> float:
        """Seconds before the next attempt; raises SourceError when there is none."""
        if attempt > self.max_retries:
            raise SourceError(
                shown,
                f"{failed.reason} (gave up after {_attempts(attempt)})",
                hint="the listing server is failing; the next run tries again",
            ) from failed.cause
        wait = retry_after_seconds(failed.retry_after, failed.server_now or datetime.now(UTC))
        if wait is not None and wait > self.max_retry_after:
            raise SourceError(
                shown,
                f"{failed.reason}; the server asks to wait {wait:.0f} s, more than the"
                f" {self.max_retry_after:.0f} s this run waits",
            ) from failed.cause
        if wait is None:
            wait = backoff_delay(attempt, self.backoff, random.random())
        return wait

    def _conditions(self, url: str) -> dict[str, str]:
        """The conditional headers for ``url`` from :attr:`validators` (RFC 9110 §13.1)."""
        etag, modified = (self.validators or {}).get(url, (None, None))
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        return headers

    def _remember(self, url: str, headers: httpx.Headers) -> None:
        """Keep a 200's validators for the next conditional GET (forget stale ones)."""
        if self.validators is None:
            return
        etag, modified = headers.get("etag"), headers.get("last-modified")
        if etag or modified:
            self.validators[url] = (etag, modified)
        else:
            self.validators.pop(url, None)

    async def _read(self, response: httpx.Response, url: str, limit: int | None = None) -> bytes:
        """The (decoded) body, refusing one over ``max_bytes``; with ``limit``, at most
        about ``limit`` bytes of it, quietly."""
        declared = response.headers.get("content-length", "")
        if limit is None and declared.isascii() and declared.isdigit():
            size = int(declared)
            if size > self.max_bytes:
                raise SourceError(
                    url,
                    f"the response is {size:,} bytes, over the limit of {self.max_bytes:,}",
                    hint="raise source.max_bytes if the listing really is that large",
                )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break
            if size > self.max_bytes:
                raise SourceError(
                    url,
                    f"the response is over the limit of {self.max_bytes:,} bytes",
                    hint="raise source.max_bytes if the listing really is that large",
                )
        return b"".join(chunks)


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
