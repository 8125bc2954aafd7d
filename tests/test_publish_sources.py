"""Per-source feeds (issue 16): with several sources, ``feeds/<source>.xml`` and ``.atom``
hold one source's papers each, the public pair holds every source's, each paper once; the
same rules as the public feed (updated at the newest entry, unchanged bytes left alone)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import feedparser
import httpx

from digest.config import Config, parse
from digest.models import Listing, Paper, Subscriber
from digest.run import make_context, publish_feeds
from digest.run.publish import source_feed_paths
from digest.serve import Service, create_app
from digest.store import Store

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
D1, D2 = date(2026, 11, 16), date(2026, 11, 17)
SOURCES = ["hf", "arxiv-ml", "neuro"]


def arxiv(n: int, title: str, **kw: object) -> Paper:
    return Paper(
        key=f"2611.{n:05d}",
        arxiv_id=f"2611.{n:05d}",
        title=title,
        abstract=f"We study {title.lower()}.",
        authors=("Ada Okafor",),
        **kw,  # type: ignore[arg-type]
    )


#: On Hugging Face on D1 and on arXiv on D2: one paper, in both sources' feeds.
SHARED_PAPER = arxiv(1, "Diffusion planners", upvotes=9)
JOURNAL = Paper(
    key="doi:10.1000/neuro.7",
    title="Glia <i>listen</i> & talk",
    abstract="Astrocytes modulate synapses.",
    doi="10.1000/neuro.7",
    link="https://journal.example/a/7",
    categories=("Neuroscience",),
)


def site(tmp_path: Path) -> tuple[Config, Store]:
    config = parse(
        {"database": f"sqlite:///{tmp_path / 'digest.db'}", "base_url": "https://d.example"},
        base=tmp_path,
    )
    store = Store(config.database)
    save = store.papers.save_listing
    save(Listing(D1, (SHARED_PAPER, arxiv(2, "Speech agents", upvotes=3)), source="hf"), NOW)
    save(Listing(D1, (JOURNAL,), source="neuro"), NOW)
    listed_again = arxiv(1, "Diffusion planners", categories=("cs.LG", "cs.AI"), version=2)
    save(
        Listing(D2, (listed_again, arxiv(3, "Sparse routers", categories=("cs.CL",))), "arxiv-ml"),
        NOW,
    )
    store.members.add_subscriber(Subscriber(email="ab@example.org", keywords=("diffusion",)))
    return config, store


def titles(path: Path) -> list[str]:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.bozo_exception
    return [e.title for e in parsed.entries]


def test_each_source_has_its_own_feed_and_the_public_one_has_every_paper_once(
    tmp_path: Path,
) -> None:
    config, store = site(tmp_path)
    with store:
        written = publish_feeds(config, store, NOW, sources=SOURCES)
    out = config.feeds.dir
    assert sorted(titles(out / "feed.atom")) == sorted(
        ["Diffusion planners", "Speech agents", "Sparse routers", "Glia <i>listen</i> & talk"]
    )
    hf_rss, hf_atom = source_feed_paths(config, "hf")
    assert hf_rss == out / "feeds" / "hf.xml" and {hf_rss, hf_atom} <= set(written)
    for path in (hf_rss, hf_atom):
        assert titles(path) == ["Diffusion planners", "Speech agents"]
    arxiv_rss, arxiv_atom = source_feed_paths(config, "arxiv-ml")
    for path in (arxiv_rss, arxiv_atom):
        assert titles(path) == ["Diffusion planners", "Sparse routers"]
    assert titles(source_feed_paths(config, "neuro")[1]) == ["Glia <i>listen</i> & talk"]

    atom = feedparser.parse(hf_atom.read_bytes())
    assert atom.feed.title == f"{config.feeds.title}: hf"
    assert atom.feed.links[0].href == "https://d.example/feeds/hf.atom"
    # Each is updated at its newest entry: Hugging Face's papers were listed on D1.
    assert atom.feed.updated.startswith("2026-11-16T00:00")
    assert feedparser.parse(arxiv_atom.read_bytes()).feed.updated.startswith("2026-11-17")
    # An entry names every source that listed the paper, and its link is its own page.
    first = atom.entries[0]
    assert [(t.term, t.scheme) for t in first.tags][-2:] == [
        ("hf", "tag:d.example,2026:source"),
        ("arxiv-ml", "tag:d.example,2026:source"),
    ]
    journal = feedparser.parse(source_feed_paths(config, "neuro")[0].read_bytes()).entries[0]
    assert journal.link == "https://journal.example/a/7"
    # The subscribers' private feeds are still there beside them.
    assert len([p for p in (out / "feeds").iterdir() if p.is_symlink()]) == 2


def test_an_unchanged_source_feed_is_left_alone_and_a_changed_one_rewritten(
    tmp_path: Path,
) -> None:
    config, store = site(tmp_path)
    with store:
        publish_feeds(config, store, NOW, sources=SOURCES)
        paths = {name: source_feed_paths(config, name) for name in SOURCES}
        before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for ps in paths.values() for p in ps}
        later = datetime(2026, 11, 18, 15, tzinfo=UTC)
        publish_feeds(config, store, later, sources=SOURCES)
        assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in before} == before

        # A new neuro paper: only the neuro pair changes.
        fresh = Paper(key="doi:10.1000/neuro.8", title="Microglia", doi="10.1000/neuro.8")
        store.papers.save_listing(Listing(date(2026, 11, 18), (fresh,), "neuro"), later)
        publish_feeds(config, store, later, sources=SOURCES)
        for name in ("hf", "arxiv-ml"):
            for p in paths[name]:
                assert (p.stat().st_mtime_ns, p.read_bytes()) == before[p]
        assert titles(paths["neuro"][1]) == ["Microglia", "Glia <i>listen</i> & talk"]


def test_one_source_writes_no_source_feeds_and_a_dropped_source_loses_its_files(
    tmp_path: Path,
) -> None:
    config, store = site(tmp_path)
    folder = config.feeds.dir / "feeds"
    with store:
        publish_feeds(config, store, NOW)  # the default: one source
        assert not [n for n in os.listdir(folder) if n.split(".")[0] in SOURCES]
        publish_feeds(config, store, NOW, sources=["hf"])
        assert not [n for n in os.listdir(folder) if n.split(".")[0] in SOURCES]
        publish_feeds(config, store, NOW, sources=SOURCES)
        assert {"hf.xml", "hf.atom", "neuro.xml", "neuro.atom"} <= set(os.listdir(folder))
        publish_feeds(config, store, NOW, sources=["hf", "arxiv-ml"])
        names = set(os.listdir(folder))
    assert {"hf.xml", "hf.atom", "arxiv-ml.xml", "arxiv-ml.atom"} <= names
    assert not {"neuro.xml", "neuro.atom"} & names


async def test_digest_serve_serves_each_source_feed_and_nothing_else_under_its_name(
    tmp_path: Path,
) -> None:
    config, store = site(tmp_path)
    with store:
        publish_feeds(config, store, NOW, sources=SOURCES)
        ctx = make_context(config, store, now=NOW)
        service = Service(lambda now: replace(ctx, now=now))
        web = create_app(lambda: ctx, service, b"test-secret-0123456789abcdef", start_service=False)
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for name in SOURCES:
                for kind in ("xml", "atom"):
                    got = await client.get(f"/feeds/{name}.{kind}")
                    assert got.status_code == 200, (name, kind)
                    assert (
                        got.content == (config.feeds.dir / "feeds" / f"{name}.{kind}").read_bytes()
                    )
                    assert "private" not in got.headers["cache-control"]
                    etag = {"If-None-Match": got.headers["etag"]}
                    assert (
                        await client.get(f"/feeds/{name}.{kind}", headers=etag)
                    ).status_code == 304
            # Not a source's, not a file, not a feed type: 404 as before.
            for path in (
                "/feeds/physics.xml",
                "/feeds/shared.xml",
                "/feeds/hf.html",
                "/feeds/HF.xml",
            ):
                assert (await client.get(path)).status_code == 404, path
