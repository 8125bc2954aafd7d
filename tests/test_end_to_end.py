"""Five overlapping days through ``digest run``: a real HTTP listing server, a real SMTP server,
a real database (SQLite, then PostgreSQL where one answers). Each subscriber gets exactly the
new matching papers each day, none twice, nothing on a rerun, and both feeds parse."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import feedparser
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.select import DayMatcher
from digest.sources.huggingface import parse_page
from digest.store import deliveries, papers, subscribers
from digest.store.outbox_rows import unpack_ids
from tests.support.listing_server import ListingServer
from tests.support.mime import body_of
from tests.support.smtpd import SmtpServer

FIXTURES = Path(__file__).parent / "fixtures" / "listings"
MANIFEST = json.loads((FIXTURES / "MANIFEST.json").read_text("utf-8"))
DAYS = ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
ID_LINK = re.compile(r"https://huggingface\.co/papers/(\d{4}\.\d{4,5})\b")


@dataclass(frozen=True)
class Reader:
    email: str
    keywords: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    max_papers: int = 1000


READERS = [
    Reader("all@example.org", ()),
    Reader("diffusion@example.org", ("title:diffusion",)),
    Reader("agents@example.org", ("agent*", '"mixture of experts"'), ("medical",), max_papers=5),
    Reader("llm@example.org", ('LLM OR "large language model"', "GPT-4"), ("survey",)),
    Reader("nobody@example.org", ('"no paper says this"',)),
]


def toml_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(q) for q in items) + "]"


def write_config(folder: Path, db_url: str, source_url: str, smtp: SmtpServer) -> Path:
    lines = [
        f'database = "{db_url}"',
        'base_url = "https://digest.example.org"',
        "[source]",
        f'url = "{source_url}"',
        "timeout = 5",
        "[mail]",
        'from = "Paper Digest <digest@example.org>"',
        "[smtp]",
        f'host = "{smtp.host}"',
        f"port = {smtp.port}",
        'security = "none"',
        "[feeds]",
        'dir = "public"',
    ]
    for r in READERS:
        lines += [
            "[[subscribers]]",
            f'email = "{r.email}"',
            f"keywords = {toml_list(r.keywords)}",
            f"exclude = {toml_list(r.exclude)}",
            f"max_papers = {r.max_papers}",
        ]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def expected_matches(day: str, reader: Reader) -> list[str]:
    """The keys of ``day``'s listing that ``reader``'s queries select, best first."""
    body = (FIXTURES / f"{day}.json").read_bytes()
    papers, _ = parse_page(body, day)
    unique = list({p.key: p for p in reversed(papers)}.values())  # the first of each key wins
    order = {p.key: i for i, p in reversed(list(enumerate(papers)))}
    unique.sort(key=lambda p: order[p.key])
    return [m.paper.key for m in DayMatcher(unique).select(reader.keywords, reader.exclude)]


@pytest.fixture
def listing_server() -> Iterator[ListingServer]:
    with ListingServer(directory=FIXTURES, today=date(2026, 11, 23)) as server:
        yield server


def test_five_overlapping_days(
    tmp_path: Path,
    db_url: str,
    listing_server: ListingServer,
    smtp_server: Callable[..., SmtpServer],
) -> None:
    smtp = smtp_server()
    config = write_config(tmp_path, db_url, listing_server.url, smtp)

    def run(day: str) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(config), "run", "--date", day])
        assert result.exit_code == 0, result.output
        return result

    received: dict[str, set[str]] = {r.email: set() for r in READERS}
    for day in DAYS:
        before = len(smtp.messages)
        result = run(day)
        info = MANIFEST["days"][day]
        assert f"fetched {len(info['keys'])} papers, {len(info['new'])} new" in result.stdout
        todays = smtp.messages[before:]
        by_reader = {m.rcpt_tos[0]: m for m in todays}
        assert len(by_reader) == len(todays), "one email per reader per day"

        for reader in READERS:
            already = received[reader.email]
            wanted = [k for k in expected_matches(day, reader) if k not in already]
            message = by_reader.get(reader.email)
            if not wanted:
                assert message is None, f"{reader.email} got an email with nothing new on {day}"
                continue
            assert message is not None, f"{reader.email} got nothing on {day}"
            text = body_of(message.message, "plain")
            html = body_of(message.message, "html")
            shown = wanted[: reader.max_papers]
            shown_ids = {k for k in shown if not k.startswith("title:")}
            in_mail = set(ID_LINK.findall(text))
            assert in_mail == shown_ids, (day, reader.email)
            assert set(ID_LINK.findall(html)) >= shown_ids
            if len(wanted) > reader.max_papers:
                assert f"{len(wanted) - reader.max_papers} more" in text
            assert not (set(wanted) & already), "a paper went twice"
            already.update(wanted)  # papers past max_papers count as delivered

        assert run(day).stdout.count(", sent") == 0
        assert len(smtp.messages) == before + len(todays), "a rerun sent something"

    # the "everything" reader got each valid paper of the five days exactly once
    every_key = [k for day in DAYS for k in MANIFEST["days"][day]["new"]]
    assert len(every_key) == len(set(every_key))
    assert received["all@example.org"] == set(every_key)

    # the database agrees with what the server got: each (reader, paper) recorded once, all sent
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        keys = dict(conn.execute(sa.select(papers.c.id, papers.c.key)).all())
        digests = conn.execute(
            sa.select(subscribers.c.email, deliveries.c.papers, deliveries.c.status).join(
                subscribers, subscribers.c.id == deliveries.c.subscriber_id
            )
        ).all()
    engine.dispose()
    rows = [(mail, keys[i], status) for mail, blob, status in digests for i in unpack_ids(blob)]
    assert {s for _, _, s in rows} == {"sent"}
    recorded: dict[str, set[str]] = {}
    for mail, key, _ in rows:
        recorded.setdefault(mail, set()).add(key)
    assert {m: k for m, k in recorded.items()} == {m: k for m, k in received.items() if k}

    # the empty weekend listing is fine and sends nothing
    before = len(smtp.messages)
    weekend = run("2026-11-21")
    assert "empty" in weekend.stdout
    assert len(smtp.messages) == before

    for name in ("feed.xml", "feed.atom"):
        parsed = feedparser.parse((tmp_path / "public" / name).read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert len(parsed.entries) == len(every_key)
    private = sorted((tmp_path / "public" / "feeds").glob("*.xml"))
    assert len(private) == len(READERS)
    for path in private:
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
