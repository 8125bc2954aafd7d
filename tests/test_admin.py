"""The operator's pages: ``/admin`` behind HTTP Basic (404 without DIGEST_ADMIN_PASSWORD),
its inline SVG chart, ``/metrics`` in the Prometheus text format (only with ``[web]
metrics = true``), and ``digest status --json``, the same data with a stable schema."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from digest.run import Context, overview
from digest.serve import create_app
from digest.serve.admin import basic_credentials, chart
from digest.store import Store
from tests.support.listings import item, write_days
from tests.support.prometheus import BadExposition, parse
from tests.support.site import digest, write_config
from tests.test_web import SECRET, App, app

__all__ = ["app"]  # the web fixture, imported for this module's tests

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN = basic("admin", PASSWORD)


@asynccontextmanager
async def site(
    ctx: Context, password: str | None, *, metrics: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the web app over ``ctx``, made with DIGEST_ADMIN_PASSWORD = ``password``."""
    mp = pytest.MonkeyPatch()
    if password is None:
        mp.delenv("DIGEST_ADMIN_PASSWORD", raising=False)
    else:
        mp.setenv("DIGEST_ADMIN_PASSWORD", password)
    web = replace(ctx.config.web, metrics=metrics)
    here = replace(ctx, config=replace(ctx.config, web=web))
    try:
        asgi = create_app(lambda: here, None, SECRET, clock=lambda: NOW, start_service=False)
    finally:
        mp.undo()
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def record_runs(store: Store, now: datetime = NOW) -> None:
    """Three days of runs up to ``now``: two good, one failed fetch (the newest), and what
    each recorded of the config's one source (a ``[source]`` table: named ``file``)."""
    for offset, (outcome, stage, sent, failed, deferred) in enumerate(
        [("ok", None, 40, 2, 1), ("ok", None, 42, 0, 3), ("failed", "fetch", 0, 0, 0)]
    ):
        started = now - timedelta(days=2 - offset)
        run_id = store.run_log.start_run(started.date(), started, "host", 1)
        if stage:
            store.sources.record_failure("file", "file", "listing unreachable", started)
        else:
            store.sources.record_ok("file", "file", started.date(), 2, started)
        store.run_log.finish_run(
            run_id,
            started + timedelta(minutes=1),
            outcome,
            stage=stage,
            error="listing unreachable" if stage else None,
            sent=sent,
            failed=failed,
            deferred=deferred,
        )


async def test_without_the_password_variable_neither_page_exists(app: App) -> None:
    async with site(app.ctx, None, metrics=True) as client:
        for path in ("/admin", "/metrics"):
            assert (await client.get(path, headers=ADMIN)).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("admin", "wrong"),
        basic("root", PASSWORD),
        basic("admin", PASSWORD + "x"),
        {"Authorization": "Bearer " + PASSWORD},
        {"Authorization": "Basic not-base64!"},
    ],
)
async def test_a_wrong_or_missing_password_gets_401(app: App, headers: dict[str, str]) -> None:
    async with site(app.ctx, PASSWORD, metrics=True) as client:
        for path in ("/admin", "/metrics"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith('Basic realm="digest admin"')
            assert "no-store" in response.headers["cache-control"]


async def test_the_admin_page_shows_runs_as_an_svg_chart_and_the_state(app: App) -> None:
    record_runs(app.store)
    async with site(app.ctx, PASSWORD) as client:
        response = await client.get("/admin", headers=ADMIN)
    assert response.status_code == 200
    page = response.text
    assert "<svg" in page and "<script" not in page
    svg = ElementTree.fromstring(page[page.index("<svg") : page.index("</svg>") + 6])
    assert svg.get("viewBox") == "0 0 720 220"  # well-formed, drawn on the server
    assert not re.search(r'(?:src|href)="https?://', page), "no outside request"
    assert page.count('<rect class="sent"') == 2 and page.count('<rect class="failed"') == 1
    assert "2026-11-14: 40 sent" in page and "2026-11-15: 3 deferred" in page
    assert "failing" in page and "listing unreachable" in page  # the source's health
    assert "<th>active</th>" in page and "<th>pending</th>" in page
    assert "Bounces, last 7 days" in page


async def test_metrics_off_by_default_then_prometheus_text(app: App) -> None:
    record_runs(app.store)
    async with site(app.ctx, PASSWORD) as client:
        assert (await client.get("/metrics", headers=ADMIN)).status_code == 404
    async with site(app.ctx, PASSWORD, metrics=True) as client:
        response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = parse(response.text)
    assert families["digest_runs_total"].type == "counter"
    assert families["digest_runs_total"].samples == {
        (("outcome", "failed"),): 1.0,
        (("outcome", "ok"),): 2.0,
    }
    assert families["digest_messages_sent_total"].samples == {(): 82.0}
    assert families["digest_messages_failed_total"].samples == {(): 2.0}
    assert families["digest_source_failures_total"].samples == {(): 1.0}
    assert families["digest_queue_depth"].type == "gauge"
    assert all(f.help for f in families.values())


@pytest.mark.parametrize(
    "text",
    [
        "digest_x_total 1\n",  # no TYPE before it
        "# TYPE digest_x counter\ndigest_x 1\n",  # a counter not named *_total
        "# TYPE digest_x_total counter\ndigest_x_total one\n",
        '# TYPE digest_x_total counter\ndigest_x_total{a="1"} 1\ndigest_x_total{a="1"} 2\n',
        '# TYPE digest_x gauge\ndigest_x{a="\\q"} 1\n',
        "# TYPE digest_x gauge\ndigest_x 1",
    ],
)
def test_the_test_parser_is_strict(text: str) -> None:
    with pytest.raises(BadExposition):
        parse(text)


def test_basic_credentials() -> None:
    assert basic_credentials("Basic YWRtaW46czpz") == ("admin", "s:s")
    assert basic_credentials("basic YWRtaW46") == ("admin", "")
    assert basic_credentials("Basic YWRtaW4=") is None  # no colon
    assert basic_credentials("Basic ////") is None  # not UTF-8
    assert basic_credentials("Digest x") is None


def test_the_chart_stacks_each_day_and_scales_to_the_busiest() -> None:
    bars = chart(
        [
            {"day": "2026-11-14", "sent": 50, "failed": 25, "deferred": 25},
            {"day": "2026-11-15", "sent": 10, "failed": 0, "deferred": 0},
        ]
    )
    assert [b.day for b in bars] == ["2026-11-14", "2026-11-15"]
    sent, failed, deferred = bars[0].segments
    assert (sent[1], sent[2]) == (100.0, 100.0) and (failed[1], failed[2]) == (50.0, 50.0)
    assert (deferred[1], deferred[2]) == (0.0, 50.0)
    assert bars[1].segments[0][2] == 20.0
    assert chart([]) == []


SCHEMA_KEYS = {
    "schema",
    "generated_at",
    "last_run",
    "running",
    "alerting",
    "runs",
    "sources",
    "queue",
    "subscribers",
    "growth",
    "bounces",
    "next_sends",
}


def test_status_json_is_the_documented_schema(tmp_path: Path, db_url: str) -> None:
    listings = write_days(tmp_path / "listings", {"2026-11-16": [item("2611.00001", "Diffusion")]})
    config = write_config(tmp_path, db_url, listings, mail='outbox_dir = "outbox"')
    assert digest(tmp_path, "subscribers", "add", "bo@example.org").exit_code == 0
    now = datetime.now(UTC)
    with Store(db_url) as store:
        record_runs(store, now)
    days = [(now - timedelta(days=n)).date().isoformat() for n in (2, 1, 0)]
    result = digest(tmp_path, "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == SCHEMA_KEYS and data["schema"] == 1
    assert [d["day"] for d in data["runs"]] == days
    assert data["runs"][0] == {
        "day": days[0],
        "runs": 1,
        "sent": 40,
        "failed": 2,
        "deferred": 1,
    }
    assert data["last_run"]["outcome"] == "failed"
    (source,) = data["sources"]
    assert source["kind"] == "file" and source["status"] == "failing"
    assert source["failures_in_a_row"] == 1 and source["last_error"] == "listing unreachable"
    assert set(data["queue"]) == {"pending", "sending", "failed", "sent"}
    assert data["subscribers"]["active"] == 1
    assert sum(g["added"] for g in data["growth"]) == 1
    assert set(data["bounces"]) == {"days", "hard", "soft", "complaint", "mailto"}
    assert config.exists()


async def test_the_admin_page_and_status_json_share_one_document(app: App) -> None:
    record_runs(app.store)
    data = overview(app.store, app.ctx.config, NOW)
    async with site(app.ctx, PASSWORD) as client:
        page = (await client.get("/admin", headers=ADMIN)).text
    assert NOW.isoformat() in page
    for day in data["runs"]:
        for kind in ("sent", "failed", "deferred"):
            shown = f"{day['day']}: {day[kind]} {kind}</title>"
            assert (shown in page) == (day[kind] > 0), shown
    assert f"<td>{data['queue']['pending']}</td>" in page
    assert date(2026, 11, 16).isoformat() in page


async def test_authorised_gets_change_nothing(app: App) -> None:
    """Issue 19's rule for the routes test_links probes without the password."""
    from tests.test_links import snapshot

    record_runs(app.store)
    before = snapshot(app)
    async with site(app.ctx, PASSWORD, metrics=True) as client:
        for method in ("GET", "HEAD", "OPTIONS"):
            for path in ("/admin", "/metrics"):
                response = await client.request(method, path, headers=ADMIN)
                assert response.status_code in (200, 405), (method, path)
    assert snapshot(app) == before


async def test_the_admin_page_tells_a_running_run_from_a_gone_one(app: App) -> None:
    """A run whose process died on this host is "gone", not "running" for ever."""
    from digest.run.claims import HOST
    from tests.test_runs_gone import dead_pid

    day = date(2026, 11, 16)
    alive = app.store.run_log.start_run(day, NOW, HOST, os.getpid())
    dead = app.store.run_log.start_run(day, NOW, HOST, pid := dead_pid())
    running = {r["id"]: r for r in overview(app.store, app.ctx.config, NOW)["running"]}
    assert (running[alive]["gone"], running[dead]["gone"]) == (False, True)
    assert (running[dead]["host"], running[dead]["pid"]) == (HOST, pid)
    async with site(app.ctx, PASSWORD) as client:
        page = (await client.get("/admin", headers=ADMIN)).text
    assert f"(run {alive})" in page and f"Running since {NOW.isoformat()}" in page
    assert f"Gone: run {dead} for {day}" in page and f"({pid} on {HOST})" in page
