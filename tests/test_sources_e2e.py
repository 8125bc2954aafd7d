"""Three sources at once, end to end (issue 16): Hugging Face, arXiv (cs.LG and cs.CL) and a
journal's feed, each from a real local server, over five days that overlap (Wednesday
2026-11-18 to Sunday 2026-11-22), on SQLite and PostgreSQL. Every digest is read back from
the outbox: each reader gets exactly the papers their keywords match from the sources they
chose, each once, however many sources and days list it.

The days:

- Wednesday: one paper on Hugging Face and on arXiv; an arXiv paper new in cs.CL and
  cross-listed in cs.LG (two items of the feed); a feed entry with HTML in its title, in
  UTF-8 under a declared windows-1252 / ISO-8859-1.
- Thursday: arXiv answers 429 with ``Retry-After: 1`` first, then lists Wednesday's
  shared paper again as v2 (a replacement) and a new one; Hugging Face is down (its two
  papers come on Friday, when the run catches its Thursday up).
- Friday: arXiv is down (the feed answers 503, the API its error entry): its paper comes on
  Saturday, from the query API; the feed lists an arXiv paper already sent on Thursday.
- Saturday, Sunday: no arXiv announcement (a weekend: an empty feed, never a failure nor
  an alert); Sunday nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from digest import __version__
from digest.config import load
from digest.errors import SourceError
from digest.run import make_context
from digest.serve import PassReport, Service, create_app
from digest.serve.scheduler import fetch_dates
from digest.store import Store
from tests.support.arxiv_server import Record, error_xml
from tests.support.listings import item
from tests.support.sources_site import (
    ADMIN,
    FeedEntry,
    ThreeSources,
    arxiv_rss,
    rss_item,
)

WED, THU, FRI, SAT, SUN = (date(2026, 11, d) for d in range(18, 23))
NEUTRAL = "We study the problem carefully and report what we found."

P1 = "Diffusion Policies for Robot Planning"  # HF and arXiv Wednesday; arXiv v2 Thursday
P2 = "Latent Diffusion Sketches"  # HF only
P3 = "Language Models as Diffusion Critics"  # arXiv cs.CL new + cs.LG cross (two items)
P5 = "Multilingual Language Model Pruning"
F1 = "Spiking Neural Diffusion in the Möbius Cortex"  # HTML in the feed's title
P6 = "Diffusion Language Models at Scale"  # arXiv Thursday; the feed Friday
P4 = "Video Diffusion Transformers"  # HF Thursday (down): arrives Friday
F2 = "Language in the Songbird Brain"
P7 = "Diffusion for Weather Nowcasting"  # HF Friday
P8 = "Graph Diffusion Language Parsers"  # arXiv Friday (down): arrives Saturday, from the API
F3 = "Cortical Diffusion of Dopamine"
TITLES = (P1, P2, P3, P5, F1, P6, P4, F2, P7, P8, F3)

READERS = """\
[[subscribers]]
email = "ada@example.org"
keywords = ["diffusion"]

[[subscribers]]
email = "bob@example.org"
keywords = ["language"]
sources = ["arxiv-ml"]

[[subscribers]]
email = "cy@example.org"
keywords = ["brain"]

[[subscribers]]
email = "dee@example.org"
keywords = ["diffusion"]
sources = ["hf"]
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


#: What the query API knows: Friday's paper (submitted in Friday's window, Wednesday 19:00
#: to Thursday 19:00 UTC), the others of the week, and one of another category.
RECORDS = [
    Record("2611.10001", P1, utc("2026-11-17 10:00"), "cs.LG", summary=NEUTRAL),
    Record("2611.10003", P3, utc("2026-11-17 11:00"), "cs.CL", ("cs.LG",), summary=NEUTRAL),
    Record("2611.10005", P5, utc("2026-11-17 12:00"), "cs.CL", summary=NEUTRAL),
    Record("2611.10006", P6, utc("2026-11-18 10:00"), "cs.CL", summary=NEUTRAL),
    Record("2611.10008", P8, utc("2026-11-19 12:00"), "cs.CL", ("cs.LG",), summary=NEUTRAL),
    Record("2611.10009", "Diffusion on Curves", utc("2026-11-19 13:00"), "math.AG"),
]

HF = {
    WED: [item("2611.10001", P1, NEUTRAL, upvotes=12), item("2611.09002", P2, NEUTRAL)],
    THU: [item("2611.10001", P1, NEUTRAL, upvotes=30), item("2611.09004", P4, NEUTRAL)],
    FRI: [item("2611.09007", P7, NEUTRAL, upvotes=3)],
    SAT: [],
    SUN: [],
}

RSS = {
    WED: [
        rss_item("2611.10001", P1, NEUTRAL, ["cs.LG"], day=WED),
        rss_item("2611.10003", P3, NEUTRAL, ["cs.CL", "cs.LG"], day=WED),
        rss_item("2611.10003", P3, NEUTRAL, ["cs.CL", "cs.LG"], announce="cross", day=WED),
        rss_item("2611.10005", P5, NEUTRAL, ["cs.CL"], day=WED),
    ],
    THU: [
        rss_item("2611.10001", P1, NEUTRAL, ["cs.LG"], announce="replace", version=2, day=THU),
        rss_item("2611.10006", P6, NEUTRAL, ["cs.CL"], day=THU),
    ],
    FRI: [rss_item("2611.10008", P8, NEUTRAL, ["cs.CL", "cs.LG"], day=FRI)],
}

JOURNAL = [
    FeedEntry(
        "Spiking &lt;i&gt;Neural&lt;/i&gt; Diffusion in the Möbius Cortex",
        "https://jin.example.org/articles/f1?utm_source=rss",
        utc("2026-11-18 09:00"),
    ),
    FeedEntry(F2, "https://jin.example.org/articles/f2", utc("2026-11-19 09:00")),
    FeedEntry(F3, "https://jin.example.org/articles/f3", utc("2026-11-20 09:00")),
    FeedEntry(P6, "https://arxiv.org/abs/2611.10006v1", utc("2026-11-20 10:00"), NEUTRAL),
]


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[ThreeSources]:
    with ThreeSources(tmp_path, db_url, READERS, today=SUN) as running:
        running.arxiv.papers = list(RECORDS)
        yield running


def serve(site: ThreeSources, day: date) -> None:
    """What each server lists on the morning of ``day``: the day's HF listing, arXiv's feed
    of the day (a weekend's is empty and dated Saturday), the journal's entries so far."""
    site.hf.days[day.isoformat()] = HF[day]
    site.arxiv.rss = arxiv_rss(day if day < SAT else SAT, RSS.get(day, []))
    site.publish_feed(e for e in JOURNAL if e.published.date() <= day)


def failed_run_alerts(site: ThreeSources) -> int:
    """The admin's alerts of failed runs (a failing source has alerts of its own)."""
    return sum(
        ADMIN in text and "runs failed in a row" in text
        for text in (p.read_text("utf-8", "replace") for p in site.outbox.glob("*.eml"))
    )


async def test_five_days_of_three_sources_each_paper_once_to_whom_it_matches(
    site: ThreeSources,
) -> None:
    got: dict[date, dict[str, list[str]]] = {}
    reports = {}
    asked: dict[date, list[str]] = {}  # what arXiv's server was asked, by run
    for day in (WED, THU, FRI, SAT, SUN):
        before = len(site.arxiv.requests)
        serve(site, day)
        if day == THU:
            site.hf.fail(503, times=2, headers={"Retry-After": "0"})
            site.arxiv.fail(429, headers={"Retry-After": "1"}, path="/rss")
        if day == FRI:
            site.arxiv.fail(503, times=3, headers={"Retry-After": "0"}, path="/rss")
            site.arxiv.fail(body=error_xml("incorrect id format for 2611"), path="/api")
        reports[day] = await site.run(day)
        got[day] = site.received(TITLES)
        asked[day] = [r.split("?")[0].rsplit("/", 1)[0] for r in site.arxiv.requests[before:]]

    assert got[WED] == {
        "ada@example.org": sorted([P1, P2, P3, F1]),
        "bob@example.org": sorted([P3, P5]),
        "dee@example.org": sorted([P1, P2]),
    }
    assert got[THU] == {
        "ada@example.org": [P6],
        "bob@example.org": [P6],
        "cy@example.org": [F2],
    }
    assert got[FRI] == {  # HF's Thursday caught up; P1 (HF again) and P6 (the feed) not again
        "ada@example.org": sorted([P4, P7, F3]),
        "dee@example.org": sorted([P4, P7]),
    }
    assert got[SAT] == {"ada@example.org": [P8], "bob@example.org": [P8]}
    assert got[SUN] == {}

    # the failed source is named, the others' papers went, and no run failed nor alerted
    assert [f.source for f in reports[THU].source_failures] == ["hf"]
    assert [f.source for f in reports[FRI].source_failures] == ["arxiv-ml"]
    assert "error entry" in reports[FRI].source_failures[0].error.lower() or (
        "incorrect id format" in reports[FRI].source_failures[0].error
    )
    assert all(not reports[d].source_failures for d in (WED, SAT, SUN))
    assert failed_run_alerts(site) == 0
    with Store(load(site.config_path).database) as store:
        outcomes = [r.outcome for r in reversed(store.run_log.runs(5))]
        states = {s.name: s for s in store.sources.states()}
        assert store.papers.listing(SAT) is not None
        fri = store.papers.listing(FRI)
    assert outcomes == ["ok", "ok", "ok", "ok", "empty"]
    assert {n: s.failures for n, s in states.items()} == {"arxiv-ml": 0, "hf": 0, "neuro": 0}
    assert fri is not None
    assert P8 in {p.title for p in fri.papers}  # stored under Friday, where arXiv listed it

    # what arXiv was asked: the day's feed on weekdays (Thursday: a 429, then again after
    # the second it asked for; Friday: three 503s, then the API's error entry); on Saturday
    # the feed for Friday's catch-up, the weekend's (empty, of Saturday), so the API; on
    # Sunday nothing
    assert asked == {
        WED: ["/rss"],
        THU: ["/rss", "/rss"],
        FRI: ["/rss", "/rss", "/rss", "/api"],
        SAT: ["/rss", "/api"],
        SUN: [],
    }
    agents = {*site.hf.user_agents, *site.arxiv.user_agents, *site.journal.user_agents}
    assert agents == {f"paper-digest/{__version__} (mailto:digest@example.org)"}


async def test_a_paper_from_two_sources_is_one_paper_with_both_origins(
    site: ThreeSources,
) -> None:
    serve(site, WED)
    await site.run(WED)
    messages = site.messages()
    ada = next(m for m in messages if m["To"] == "ada@example.org")
    text = ada.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert body.count(P1) == 1
    assert "Ada Okafor, Bo Li · 12 upvotes · cs.LG · via hf, arxiv-ml" in body
    # counted across sources without double counting: P1, P2, P3, P5 and F1
    assert "4 new papers matching your keywords, of 5 in the day's listing." in body
    assert ada["Subject"] == "Papers for 18 Nov 2026: 4 new papers"
    assert "Spiking Neural Diffusion in the Möbius Cortex" in body  # no <i>, no mojibake
    assert "<i>" not in body and "Ã" not in body
    assert "Zoë Łukasiewicz" in body
    html = ada.get_body(("html",))
    assert html is not None and "&lt;i&gt;" not in html.get_content()

    # the archive's day page names each paper's sources too (there are several)
    config = load(site.config_path)
    with Store(config.database) as store:
        ctx = make_context(config, store, now=utc("2026-11-18 08:00"))
        app = create_app(lambda: ctx, Service(lambda now: ctx), b"s" * 43, start_service=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as web:
            page = await web.get("/archive/2026-11-18")
    assert page.status_code == 200
    assert page.text.count("via hf, arxiv-ml") == 1 and page.text.count(P1) == 1
    assert "via neuro" in page.text and "Möbius" in page.text


async def test_every_source_down_sends_nothing_fails_the_run_and_the_next_run_catches_up(
    site: ThreeSources,
) -> None:
    serve(site, WED)
    await site.run(WED)
    site.received(TITLES)
    serve(site, THU)
    site.hf.fail(503, times=2, headers={"Retry-After": "0"})
    site.arxiv.fail(503, times=3, headers={"Retry-After": "0"}, path="/rss")
    site.arxiv.fail(503, times=3, headers={"Retry-After": "0"}, path="/api")
    site.journal.fail("/journal/latest.rss", 503, times=2, headers={"Retry-After": "0"})
    with pytest.raises(SourceError) as failed:
        await site.run(THU)
    assert all(name in str(failed.value) for name in ("hf", "arxiv-ml", "neuro"))
    assert site.received(TITLES) == {}
    assert failed_run_alerts(site) == 1  # alert_after = 1: told to the admin
    with Store(load(site.config_path).database) as store:
        assert store.run_log.runs(1)[0].outcome == "failed"
        assert store.papers.listing(THU) is None

    serve(site, FRI)  # Thursday's run failed for every source: Friday's fetches it again
    await site.run(FRI)
    assert site.received(TITLES) == {
        "ada@example.org": sorted([P4, P6, P7, P8, F3]),
        "bob@example.org": sorted([P6, P8]),
        "cy@example.org": [F2],
        "dee@example.org": sorted([P4, P7]),
    }


async def test_a_scheduled_pass_fetches_each_date_once_from_every_source(
    site: ThreeSources,
) -> None:
    """``digest serve``'s pass needs Wednesday and Thursday (the lookback): Wednesday first,
    without catch-up, then Thursday with it, so no source is asked a date twice; Hugging
    Face down for Wednesday is a warning, and both dates hold every other source's papers."""
    serve(site, WED)
    serve(site, THU)  # the HF server keeps Wednesday's listing too
    site.publish_feed(e for e in JOURNAL if e.published.date() <= THU)
    site.hf.fail(503, times=2, headers={"Retry-After": "0"})  # Wednesday's fetch (older first)
    config = load(site.config_path)
    now = utc("2026-11-19 07:00")
    with Store(config.database) as store:
        ctx = make_context(config, store, now=now)
        report = PassReport(day=THU)
        found = await fetch_dates(ctx, {WED, THU}, THU, report)
        states = {s.name: s.failures for s in store.sources.states()}
    assert sorted(found) == [WED, THU]
    assert {p.title for p in found[WED].papers} == {P3, P5, F1, P1}  # P2 is HF's, down
    assert {p.title for p in found[THU].papers} == {P1, P4, P6, F2}
    assert report.source_failures == []  # today's fetch worked; Wednesday's HF failed
    assert any(w.startswith("2026-11-18: source hf failed") for w in report.warnings)
    assert states == {"hf": 0, "arxiv-ml": 0, "neuro": 0}  # its last fetch (Thursday) worked
    hf_dates = [r.split("date=")[1][:10] for r in site.hf.requests]
    # Wednesday's two attempts, then Thursday once (Wednesday is no catch-up for a source
    # first seen in this very pass: the next pass's lookback asks it again)
    assert hf_dates == ["2026-11-18", "2026-11-18", "2026-11-19"]
    assert sum("/rss/" in r for r in site.arxiv.requests) == 1  # Thursday's feed, once
