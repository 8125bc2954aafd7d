"""The run's sources made from a real config (digest.run.sources): every enabled source with
the operator's User-Agent, its interval, the validators it saved and its deadline; a slow
source holds nobody past its deadline; a subscriber's choice of sources."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest import __version__
from digest.config import Config, load
from digest.models import Paper
from digest.run import SourceSet, make_context, make_sources, store_listing, user_agent
from digest.run.sources import deadline, outside
from digest.sources import ArxivSource, FeedSource, FileSource, HttpSource
from digest.sources.http import backoff_delay
from digest.store import Store
from tests.support.listing_server import ListingServer
from tests.support.listings import item, write_days

NOW = datetime(2026, 11, 18, 7, tzinfo=UTC)

SOURCES = """\
[[sources]]
name = "hf"
kind = "huggingface"
timeout = 5
retries = 1

[[sources]]
name = "arxiv-ml"
kind = "arxiv"
categories = ["cs.LG", "cs.CL"]
timeout = 10
retries = 2

[[sources]]
name = "neuro"
kind = "feed"
url = "https://jin.example.org/rss"
min_interval = 2.5

[[sources]]
name = "old"
kind = "feed"
url = "https://old.example.org/rss"
enabled = false

[[sources]]
name = "local"
kind = "file"
path = "listings"
"""


def site(tmp_path: Path, sources: str = SOURCES, top: str = "") -> Config:
    (tmp_path / "listings").mkdir(exist_ok=True)
    (tmp_path / "config.toml").write_text(
        f"""{top}
database = "sqlite:///{tmp_path / "digest.db"}"
timezone = "Europe/Paris"
{sources}
[mail]
from = "Paper Digest <digest@example.org>"
outbox_dir = "outbox"
""",
        "utf-8",
    )
    return load(tmp_path / "config.toml")


def test_every_enabled_source_is_built_with_the_operators_user_agent(tmp_path: Path) -> None:
    config = site(tmp_path)
    agent = f"paper-digest/{__version__} (mailto:digest@example.org)"
    assert user_agent(config) == agent
    built = make_sources(config)
    assert built.names == ["hf", "arxiv-ml", "neuro", "local"]  # "old" is disabled
    hf, arxiv, neuro, local = (s.fetcher for s in built.sources)
    assert isinstance(hf, HttpSource) and hf.http.user_agent == agent
    assert isinstance(arxiv, ArxivSource) and arxiv.http.user_agent == agent
    assert arxiv.categories == ("cs.LG", "cs.CL") and arxiv.announce == ("new", "cross")
    assert isinstance(neuro, FeedSource) and neuro.http.min_interval == 2.5
    assert str(neuro.timezone) == "Europe/Paris"
    assert isinstance(local, FileSource) and local.path == tmp_path / "listings"
    assert [s.kind for s in built.sources] == ["huggingface", "arxiv", "feed", "file"]


def test_the_configured_user_agent_wins(tmp_path: Path) -> None:
    config = site(tmp_path, top='user_agent = "lab-digest/2 (+https://lab.example.org)"')
    for source in make_sources(config).sources[:3]:
        assert source.fetcher.http.user_agent == "lab-digest/2 (+https://lab.example.org)"  # type: ignore[attr-defined]


def test_a_deadline_is_every_attempt_and_the_longest_waits(tmp_path: Path) -> None:
    hf, arxiv, neuro, _old, local = site(tmp_path).sources
    backoff = [backoff_delay(a, 1.0, 0.999) for a in (1, 2, 3, 4)]
    assert deadline(hf) == pytest.approx(5 * 2 + backoff[0])
    # arXiv's hosts are gated at 3 s: that interval before each of its three attempts too
    assert deadline(arxiv) == pytest.approx(10 * 3 + backoff[0] + backoff[1] + 3 * 3)
    assert deadline(neuro) == pytest.approx(30 * 5 + sum(backoff) + 2.5 * 5)
    assert deadline(local) is None
    assert [s.deadline for s in make_sources(site(tmp_path)).sources] == [
        deadline(hf),
        deadline(arxiv),
        deadline(neuro),
        None,
    ]


def test_validators_saved_last_time_are_sent_and_kept_up_to_date(tmp_path: Path) -> None:
    config = site(tmp_path)
    with Store(config.database) as store:
        saved = {"https://jin.example.org/rss": ('"v1"', None)}
        store.sources.save_validators("neuro", saved)
        built = make_sources(config, store)
        neuro = built.sources[2]
        assert neuro.validators == saved
        assert isinstance(neuro.fetcher, FeedSource)
        assert neuro.fetcher.http.validators is neuro.validators  # one dict: the edge's
        assert built.sources[0].validators is None  # the HF API is not fetched conditionally


def test_a_given_now_is_the_sources_clock_else_the_real_time(tmp_path: Path) -> None:
    config = site(tmp_path)
    fixed = make_sources(config, now=NOW).sources
    assert isinstance(fixed[1].fetcher, ArxivSource) and fixed[1].fetcher.clock() == NOW
    assert isinstance(fixed[0].fetcher, HttpSource) and fixed[0].fetcher.today() == NOW.date()
    real = make_sources(config).sources[1].fetcher
    assert isinstance(real, ArxivSource)
    assert abs((real.clock() - datetime.now(UTC)).total_seconds()) < 60


def test_a_context_from_the_config_reads_every_source(tmp_path: Path) -> None:
    config = site(tmp_path)
    with Store(config.database) as store:
        ctx = make_context(config, store, now=NOW)
        assert isinstance(ctx.source, SourceSet) and ctx.source.store is store
        assert ctx.source.names == ["hf", "arxiv-ml", "neuro", "local"]
        assert ctx.renderer.show_sources  # several sources: each paper says which


async def test_a_slow_source_holds_nobody_past_its_deadline(tmp_path: Path) -> None:
    """Hugging Face answers after 6 s; its deadline is 1 s (timeout 1, no retry): the run
    has the file source's papers in about a second, and says why HF has none."""
    write_days(tmp_path / "listings", {"2026-11-18": [item("2611.00001", "Local paper")]})
    with ListingServer(today=date(2026, 11, 18)) as server:
        server.fail(delay=6.0)
        config = site(
            tmp_path,
            f"""\
[[sources]]
name = "hf"
kind = "huggingface"
url = "{server.url}"
timeout = 1
retries = 0

[[sources]]
name = "local"
kind = "file"
path = "listings"
""",
        )
        with Store(config.database) as store:
            started = time.monotonic()
            listing = await make_sources(config, store, now=NOW).fetch(date(2026, 11, 18))
            took = time.monotonic() - started
            states = {s.name: s for s in store.sources.states()}
    assert took < 4.0
    assert [p.title for p in listing.papers] == ["Local paper"]
    assert [f.source for f in listing.failures] == ["hf"]
    assert states["hf"].failures == 1 and states["local"].failures == 0


def paper(key: str, *sources: str) -> Paper:
    return Paper(key=key, title=key, sources=sources)


def test_a_subscriber_who_chose_sources_is_sent_only_papers_they_listed() -> None:
    papers = [paper("a", "hf"), paper("b", "arxiv-ml", "hf"), paper("c", "neuro"), paper("d")]
    assert outside(papers, None) == frozenset()
    assert outside(papers, ["arxiv-ml"]) == {"a", "c", "d"}
    assert outside(papers, ["hf", "neuro"]) == {"d"}
    assert outside(papers, []) == {"a", "b", "c", "d"}


async def test_a_sources_state_is_that_of_the_runs_date_not_of_a_date_caught_up(
    tmp_path: Path,
) -> None:
    """Source "b" fails on the 17th; on the 18th its 17th is caught up (the file is fixed)
    while its 18th fails: it is failing, with the 18th's error, and the 17th is stored."""
    write_days(tmp_path / "a", {d: [item("2611.0000" + d[-1], "A " + d)] for d in DAYS})
    write_days(tmp_path / "b", {})
    (tmp_path / "b" / "2026-11-17.json").write_text("{not json", "utf-8")
    config = site(
        tmp_path,
        """\
[[sources]]
name = "a"
kind = "file"
path = "a"

[[sources]]
name = "b"
kind = "file"
path = "b"
""",
    )
    with Store(config.database) as store:
        day_before = NOW - timedelta(days=1)
        first = await make_sources(config, store, now=day_before).fetch(date(2026, 11, 17))
        store_listing(store, first, day_before)
        assert [f.source for f in first.failures] == ["b"]
        write_days(tmp_path / "b", {"2026-11-17": [item("2611.09999", "B late")]})
        (tmp_path / "b" / "2026-11-18.json").write_text("[{broken", "utf-8")
        second = await make_sources(config, store, now=NOW).fetch(date(2026, 11, 18))
        store_listing(store, second, NOW)
        b = store.sources.state("b")
        late = store.papers.source_listing(date(2026, 11, 17), "b")
    assert second.also == (date(2026, 11, 17),)
    assert "B late" in {p.title for p in second.papers}
    assert b is not None and b.failures == 1 and b.last_error is not None
    assert "2026-11-18" in b.last_error
    assert late is not None and [p.title for p in late.papers] == ["B late"]


DAYS = ("2026-11-17", "2026-11-18")
