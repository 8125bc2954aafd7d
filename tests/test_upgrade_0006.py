"""Revision 0006 on a real older database (``tests/fixtures/legacy/today.sql``), on SQLite and
PostgreSQL: listings are named after their source's kind, every stored paper's identities
become aliases, and a paper kept under an old ``title:`` key stays that paper (nothing a
subscriber had is theirs again) when a source lists it under its new key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.identity import key_of
from digest.models import Listing, paper_key
from digest.sources.huggingface import parse_page
from digest.store import Papers, Store, migrate, open_engine
from tests.fixtures.legacy.make_legacy_db import LISTINGS
from tests.support.listings import item, write_days
from tests.support.smtpd import SmtpServer
from tests.test_migrations import LEGACY, load_legacy
from tests.test_pipeline import config, run_day

D1, D2, D3 = date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)
#: How Hugging Face lists it after the upgrade: another case, dash and white space.
RELISTED = "Naive DIFFUSION is all you need — <i>revisiting</i>  baselines"
NOW = datetime(2026, 11, 18, 7, tzinfo=UTC)
#: A paper Hugging Face listed without an arXiv id, stored by the old code under its old key.
TITLE = "Naïve Diffusion Is All You Need: <i>Revisiting</i> Baselines"
AUTHORS = ("Zoë Müller", "Bo Li")
OLD_KEY = "title:naive diffusion is all you need i revisiting i baselines"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    yield engine
    engine.dispose()


def legacy(db_url: str, tmp_path: Path, *, source: str | None = None) -> None:
    """The legacy database at ``db_url``, with the title-only paper stored and sent to ada on
    2026-11-17 as the old code did (and its listings' source replaced by ``source``)."""
    load_legacy(db_url, tmp_path)
    engine = open_engine(db_url)
    with engine.begin() as conn:
        if source is not None:
            conn.execute(sa.text("UPDATE listings SET source = :s"), {"s": source})
        conn.execute(
            sa.text(
                "INSERT INTO papers (key, arxiv_id, title, abstract, authors, upvotes,"
                " published, extra, first_seen) VALUES (:k, NULL, :t, '', :a, 4, NULL, '{}', :n)"
            ),
            {"k": OLD_KEY, "t": TITLE, "a": json.dumps(AUTHORS), "n": NOW},
        )
        conn.execute(
            sa.text("INSERT INTO listing_papers (date, paper_key, position) VALUES (:d, :k, 2)"),
            {"d": D2, "k": OLD_KEY},
        )
        sent = conn.execute(
            sa.text("SELECT id FROM deliveries WHERE subscriber_id = 1 AND listing_date = :d"),
            {"d": D1},
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO delivery_papers (delivery_id, subscriber_id, paper_key, position,"
                " shown) VALUES (:i, 1, :k, 2, :s)"
            ),
            {"i": sent, "k": OLD_KEY, "s": True},
        )
    engine.dispose()


def test_the_old_key_rule_is_what_the_legacy_code_stored() -> None:
    assert paper_key(None, TITLE) == OLD_KEY  # the key the fixture's paper would have had
    dump = (LEGACY / "today.sql").read_text("utf-8")
    assert "INSERT INTO \"listings\" VALUES('2026-11-16','/tmp/" in dump  # a file source


def test_listings_are_named_after_their_kind_and_aliases_filled(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    legacy(db_url, tmp_path)
    with Store(db_url) as store:
        assert migrate.current(engine) == migrate.HEAD
        assert store.papers.fetched_dates("file", D1) == {D1, D2}
        day = store.papers.source_listing(D2, "file")
        assert day is not None
        assert [p.key for p in day.papers] == ["2511.00002", "2511.00003", OLD_KEY]
        with engine.connect() as conn:
            query = sa.text("SELECT alias, paper_key FROM paper_aliases")
            aliases: dict[str, str] = {alias: key for alias, key in conn.execute(query)}
            heads = conn.execute(sa.text("SELECT date, source, count FROM listings")).all()
        assert sorted((str(d), s, c) for d, s, c in heads) == [
            ("2026-11-16", "file", 2),
            ("2026-11-17", "file", 2),
        ]
        new_key = key_of(title=TITLE, authors=AUTHORS)
        assert aliases[OLD_KEY] == aliases[new_key] == OLD_KEY
        for n in (1, 2, 3):
            arxiv_id = f"2511.0000{n}"
            assert aliases[arxiv_id] == arxiv_id
            assert (
                aliases[
                    key_of(title=f"Diffusion {('one', 'two', '3')[n - 1]}", authors=("Ada Okafor",))
                ]
                == arxiv_id
            )
        assert store.outbox.delivery_counts() == {"sent": 2, "pending": 2}


def test_a_hugging_face_listing_is_named_huggingface(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    legacy(db_url, tmp_path, source="https://huggingface.co/api/daily_papers")
    with Store(db_url) as store:
        assert store.papers.fetched_dates("huggingface", D1) == {D1, D2}
        assert store.papers.fetched_dates("file", D1) == set()
        day = store.papers.listing(D1)
        assert day is not None and day.source == "huggingface"
        assert [p.key for p in day.papers] == ["2511.00001", "2511.00002"]


def test_a_paper_under_an_old_title_key_is_not_sent_again_after_the_upgrade(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    legacy(db_url, tmp_path, source="https://huggingface.co/api/daily_papers")
    body = json.dumps(
        [
            item(None, RELISTED, authors=AUTHORS),
            item("2511.00004", "Diffusion four"),
        ]
    ).encode()
    fetched, _ = parse_page(body, "https://huggingface.co/api/daily_papers?date=2026-11-18")
    assert fetched[0].key == key_of(title=TITLE, authors=AUTHORS) != OLD_KEY
    with Store(db_url) as store:
        saved = store.papers.save_listing(Listing(D3, tuple(fetched), "huggingface"), NOW)
        assert [p.key for p in saved.papers] == [OLD_KEY, "2511.00004"]
        assert saved.papers[0].sources == ("huggingface",) and saved.papers[0].upvotes == 4
        # ada had it (2026-11-16's digest), bob did not: the differ leaves it out for ada only
        had = store.outbox.delivered_keys([1, 2], D3)
        assert had == {1: {OLD_KEY}, 2: set()}
        assert store.papers.resolve([fetched[0].key]) == {fetched[0].key: OLD_KEY}
        assert set(store.papers.papers_by_key([fetched[0].key])) == {fetched[0].key}
        with engine.connect() as conn:
            count = conn.execute(sa.text("SELECT COUNT(*) FROM papers")).scalar_one()
        assert count == 5  # the three of the dump, the title-only paper, 2511.00004


def test_a_downgrade_puts_the_listings_back_one_per_date(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    legacy(db_url, tmp_path)
    assert migrate.upgrade(engine, "0006") == "0006"  # adopted, stamped, then up to 0006
    Papers(engine).save_listing(Listing(D2, (), "arxiv-ml"), NOW)  # a second source that day
    assert migrate.downgrade(engine, "0005") == "0005"
    with engine.connect() as conn:
        heads = conn.execute(sa.text("SELECT date, count FROM listings ORDER BY date")).all()
        members = conn.execute(
            sa.text("SELECT date, paper_key FROM listing_papers ORDER BY date, position")
        ).all()
    assert [(str(d), c) for d, c in heads] == [("2026-11-16", 2), ("2026-11-17", 2)]
    assert [(str(d), k) for d, k in members] == [
        ("2026-11-16", "2511.00001"),
        ("2026-11-16", "2511.00002"),
        ("2026-11-17", "2511.00002"),
        ("2026-11-17", "2511.00003"),
        ("2026-11-17", OLD_KEY),
    ]
    assert migrate.upgrade(engine) == migrate.HEAD  # and up again


async def test_digest_runs_after_the_upgrade_send_the_old_title_keyed_paper_once(
    engine: Engine, db_url: str, tmp_path: Path, smtp_server: Callable[..., SmtpServer]
) -> None:
    """The same through ``digest run`` on a site. Ada had the paper before the upgrade (in
    2026-11-16's digest); bob gets it once, with 2026-11-17's listing that holds it; neither
    gets it when 2026-11-18 lists it again without an arXiv id (a new-style title key)."""
    legacy(db_url, tmp_path)
    again = [item(None, RELISTED, authors=AUTHORS), item("2511.00004", "Diffusion four")]
    server = smtp_server()
    site = config(
        tmp_path,
        db_url,
        write_days(tmp_path / "listings", {**LISTINGS, "2026-11-18": again}),
        server,
    )
    # the two digests left pending, and one for bob with the paper he had not had
    assert await run_day(site, D2) == (3, 0, 0, 2)
    assert await run_day(site, D3) == (2, 0, 0, 0)
    assert await run_day(site, D3) == (0, 0, 0, 0)
    texts = {
        r: [_text(m.message) for m in server.messages if m.rcpt_tos == (r,)]
        for r in ("ada@example.org", "bob@example.org")
    }
    assert [("Revisiting" in t, "Diffusion four" in t) for t in texts["ada@example.org"]] == [
        (False, False),
        (False, True),
    ]
    bob = sorted(("Revisiting" in t, "Diffusion four" in t) for t in texts["bob@example.org"])
    assert bob == [(False, False), (False, True), (True, False)]  # it reached bob once
    with Store(db_url) as store:
        day = store.papers.listing(D3)
        assert day is not None and [p.key for p in day.papers] == [OLD_KEY, "2511.00004"]


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())
