"""The operator's pages: ``/admin`` (the overview of :func:`digest.run.overview` as a page,
its runs as an inline SVG chart) and ``/metrics`` (Prometheus text format).

Both sit behind HTTP Basic (RFC 7617), user ``admin``, the password from the environment
variable ``DIGEST_ADMIN_PASSWORD``, compared in constant time. With the variable unset
neither page exists (404); ``/metrics`` also needs ``[web] metrics = true`` (else 404). A
wrong or missing password gets 401. Both are GET pages that change nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from digest.run import Counters, counters, overview
from digest.serve.pages import Handlers, Site

PASSWORD_ENV = "DIGEST_ADMIN_PASSWORD"
USER = "admin"
#: The Prometheus text exposition format, version 0.0.4.
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


class Admin(Handlers):
    """``/admin`` and ``/metrics``; the password is read once, when the app is made."""

    def __init__(self, site: Site, password: str | None = None) -> None:
        super().__init__(site)
        self.password = password if password is not None else os.environ.get(PASSWORD_ENV)

    async def admin(self, request: Request) -> Response:
        if not self.password:
            return self.site.not_found()
        if not self.allowed(request):
            return self.refused()
        data = await asyncio.to_thread(overview, self.store, self.site.config, self.site.clock())
        page = self.site.page("admin", data=data, chart=chart(data["runs"]))
        page.headers.update(PRIVATE)
        return page

    async def metrics(self, request: Request) -> Response:
        if not self.password or not self.site.config.web.metrics:
            return self.site.not_found()
        if not self.allowed(request):
            return self.refused()
        found = await asyncio.to_thread(counters, self.store, self.site.config)
        return PlainTextResponse(exposition(found), media_type=METRICS_TYPE, headers=PRIVATE)

    def allowed(self, request: Request) -> bool:
        """The request's Basic credentials are ``admin`` and the password."""
        assert self.password
        given = basic_credentials(request.headers.get("authorization", ""))
        user, password = given if given else ("", "")
        # Both compared every time, each in constant time: no early exit tells which.
        same_user = secrets.compare_digest(user.encode(), USER.encode())
        same_password = secrets.compare_digest(password.encode(), self.password.encode())
        return same_user & same_password

    def refused(self) -> Response:
        page = self.site.message("Password needed", "This page is for the operator.", 401)
        page.headers["WWW-Authenticate"] = 'Basic realm="digest admin", charset="UTF-8"'
        page.headers.update(PRIVATE)
        return page


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``Basic YWRtaW46cw==`` → ``("admin", "s")``; None when not Basic credentials."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = text.partition(":")
    return (user, password) if colon else None


@dataclass(frozen=True)
class Bar:
    """One day of the chart: its label and stacked segments (kind, y, height) in pixels."""

    day: str
    x: float
    width: float
    segments: tuple[tuple[str, float, float, int], ...]  # kind, y, height, count


#: The chart's size in pixels (the SVG scales to its box) and the order of the stack.
WIDTH, HEIGHT, KINDS = 720, 200, ("sent", "failed", "deferred")


def chart(days: Sequence[Mapping[str, Any]]) -> list[Bar]:
    """The bars of the runs chart: one per day, sent, failed and deferred stacked, scaled
    to the busiest day."""
    top = max((sum(int(d[k]) for k in KINDS) for d in days), default=0) or 1
    step = WIDTH / max(len(days), 1)
    bars = []
    for i, d in enumerate(days):
        y = float(HEIGHT)
        segments = []
        for kind in KINDS:
            height = HEIGHT * int(d[kind]) / top
            y -= height
            segments.append((kind, round(y, 2), round(height, 2), int(d[kind])))
        bars.append(
            Bar(
                str(d["day"]),
                round(i * step + step * 0.1, 2),
                round(step * 0.8, 2),
                tuple(segments),
            )
        )
    return bars


def exposition(found: Counters) -> str:
    """The counters in the Prometheus text format: HELP and TYPE before each family,
    counters named ``*_total``."""
    t = found.totals
    families: list[tuple[str, str, str, list[tuple[str, int]]]] = [
        (
            "digest_runs_total",
            "counter",
            "Runs recorded, by outcome.",
            [(_labels(outcome=o), n) for o, n in sorted(t.runs.items())],
        ),
        (
            "digest_messages_sent_total",
            "counter",
            "Digests the mail server accepted.",
            [("", t.sent)],
        ),
        (
            "digest_messages_failed_total",
            "counter",
            "Digests that failed for good.",
            [("", t.failed)],
        ),
        (
            "digest_messages_deferred_total",
            "counter",
            "Digests deferred to a later run.",
            [("", t.deferred)],
        ),
        (
            "digest_source_failures_total",
            "counter",
            "Runs that failed fetching the listing.",
            [("", t.fetch_failures)],
        ),
        *_source_families(found),
        ("digest_queue_depth", "gauge", "Deliveries pending or being sent.", [("", found.queue)]),
        (
            "digest_subscribers",
            "gauge",
            "Subscribers by state.",
            [(_labels(state=s), n) for s, n in sorted(found.states.items())],
        ),
    ]
    lines = []
    for name, kind, text, samples in families:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{labels} {value}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _source_families(found: Counters) -> list[tuple[str, str, str, list[tuple[str, int]]]]:
    """Each enabled source's failed runs in a row and last success, labelled by its name."""
    return [
        (
            "digest_source_failures_in_a_row",
            "gauge",
            "Runs in a row in which each enabled source failed (0: its last fetch worked).",
            [(_labels(source=h.name), h.runs_failed) for h in found.sources],
        ),
        (
            "digest_source_last_success_timestamp_seconds",
            "gauge",
            "When each enabled source last fetched a listing (Unix time; sources never fetched"
            " are left out).",
            [
                (_labels(source=h.name), int(h.last_ok_at.timestamp()))
                for h in found.sources
                if h.last_ok_at is not None
            ],
        ),
    ]


def _labels(**labels: str) -> str:
    """``{name="value"}``, the value escaped as the format says (backslash, quote, newline)."""

    def escaped(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escaped(v)}"' for k, v in labels.items()) + "}"
