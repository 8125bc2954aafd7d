"""``digest status``, its JSON and ``/admin`` per source: each configured source's state (a
quiet arXiv Saturday is no failure), the failing ones with their error, escaped on the page;
an empty listing beside a failed source is not called a weekend."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from digest.config import load
from digest.run import make_context, overview
from digest.store import Store
from tests.support.prometheus import parse
from tests.support.site import digest
from tests.test_admin import ADMIN, PASSWORD
from tests.test_admin import site as admin_site
from tests.test_sources_cli import SAT, T0, fetch_runs, site

__all__ = ["site"]  # the fixture of tests/test_sources_cli.py: five sources, file listings


async def test_status_names_each_source_and_each_failing_one(site: Path) -> None:
    await fetch_runs(site)
    result = digest(site, "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "sources:    hf not fetched yet, arxiv-ml quiet (0 papers: weekend or holiday?),"
        " local ok (2 papers), mirror failing"
    ) in lines
    [mirror] = [line for line in lines if line.startswith("  mirror: ")]
    assert mirror.startswith(
        f"  mirror: failing, last worked {T0:%Y-%m-%d %H:%M} UTC (2 run(s), 3 fetch(es) in a row): "
    )
    assert "HTML" in mirror
    assert not any(line.startswith(("  old", "  gone")) for line in lines)  # not enabled


async def test_an_empty_listing_beside_a_failing_source_is_not_a_weekend(site: Path) -> None:
    await fetch_runs(site)
    cfg = load(site / "config.toml")
    with Store(cfg.database) as store:  # a later run that listed nothing: empty
        at = T0 + timedelta(days=5)
        run_id = store.run_log.start_run(SAT, at, "test", 1)
        store.run_log.finish_run(run_id, at, "empty")
    status = digest(site, "status").stdout
    assert "listing:    listing empty (1 source(s) failing)" in status
    assert "weekend or holiday?)\n" not in status.split("sources:")[0]


async def test_status_json_and_admin_show_every_source(site: Path) -> None:
    await fetch_runs(site)
    cfg = load(site / "config.toml")
    with Store(cfg.database) as store:  # an error holding markup, as a server may answer
        store.sources.record_failure("hf", "huggingface", '<script>alert("x")</script> 503', T0)
    data = json.loads(digest(site, "status", "--json").stdout)
    assert [(s["name"], s["status"]) for s in data["sources"]] == [
        ("hf", "failing"),
        ("arxiv-ml", "ok"),
        ("local", "ok"),
        ("mirror", "failing"),
        ("old", "disabled"),
        ("gone", "removed"),
    ]
    assert data["sources"][0]["last_error"] == '<script>alert("x")</script> 503'
    with Store(cfg.database) as store:
        ctx = make_context(cfg, store, now=T0)
        assert overview(store, cfg, T0)["sources"][3]["failures_in_a_row"] == 2
        async with admin_site(ctx, PASSWORD) as client:
            page = (await client.get("/admin", headers=ADMIN)).text
    table = page[page.index("<h2>Sources</h2>") : page.index("<h2>Queue</h2>")]
    assert table.count("<tr>") == 7  # the header and six sources
    assert "<script>" not in table and "&lt;script&gt;" in table
    assert "ok (quiet: weekend or holiday?)" in table
    assert "<td>2 run(s), 3 fetch(es)</td>" in table
    assert "https://rss.arxiv.org/rss/cs.LG+stat.ML" in table
    assert ">removed<" in table and ">disabled<" in table


async def test_metrics_give_each_enabled_sources_failures_and_last_success(site: Path) -> None:
    await fetch_runs(site)
    cfg = load(site / "config.toml")
    with Store(cfg.database) as store:
        ctx = make_context(cfg, store, now=T0)
        async with admin_site(ctx, PASSWORD, metrics=True) as client:
            response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    families = parse(response.text)
    failures = families["digest_source_failures_in_a_row"]
    assert failures.type == "gauge"
    assert failures.samples == {  # enabled sources only: not "old", not "gone"
        (("source", "hf"),): 0.0,
        (("source", "arxiv-ml"),): 0.0,
        (("source", "local"),): 0.0,
        (("source", "mirror"),): 2.0,
    }
    success = families["digest_source_last_success_timestamp_seconds"].samples
    assert success == {  # hf never fetched: left out
        (("source", "arxiv-ml"),): (T0 + timedelta(days=3)).timestamp(),
        (("source", "local"),): (T0 + timedelta(days=2)).timestamp(),
        (("source", "mirror"),): T0.timestamp(),
    }
