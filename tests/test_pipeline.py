"""The daily cycle when mail goes wrong: nothing marked sent that was not, nothing lost,
nothing twice. Real SMTP server, real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.config import load
from digest.run import make_context, run
from digest.store import Store
from tests.support.listings import item, write_days
from tests.support.site import write_config
from tests.support.smtpd import SmtpServer

Server = Callable[..., SmtpServer]
D1, D2 = date(2026, 11, 16), date(2026, 11, 17)
NOW = datetime(2026, 11, 17, 7, tzinfo=UTC)
IDS = re.compile(rb"huggingface\.co/papers/(\d{4}\.\d{5})")


@pytest.fixture
def listings(tmp_path: Path) -> Path:
    return write_days(
        tmp_path / "listings",
        {
            "2026-11-16": [
                item("2511.00001", "Diffusion one"),
                item("2511.00002", "Diffusion two"),
            ],
            "2026-11-17": [item("2511.00002", "Diffusion two"), item("2511.00003", "Diffusion 3")],
        },
    )


def config(tmp_path: Path, db_url: str, listings: Path, server: SmtpServer) -> Path:
    return write_config(
        tmp_path,
        db_url,
        listings,
        server=server,
        smtp="max_attempts = 2",
        readers=("ada@example.org", "bob@example.org"),
    )


async def run_day(cfg_path: Path, day: date) -> tuple[int, int, int, int]:
    cfg = load(cfg_path)
    with Store(cfg.database) as store:
        report = await run(make_context(cfg, store, now=NOW), day)
    return report.sent, report.failed, report.deferred, report.resumed


def papers_to(server: SmtpServer, address: str) -> list[str]:
    return [
        i.decode() for m in server.messages if m.rcpt_tos == (address,) for i in IDS.findall(m.data)
    ]


async def test_a_deferred_digest_goes_out_once_on_the_next_run(
    tmp_path: Path, db_url: str, listings: Path, smtp_server: Server
) -> None:
    server = smtp_server(data_reply="451 4.3.0 Try again later")
    path = config(tmp_path, db_url, listings, server)
    assert await run_day(path, D1) == (0, 0, 2, 0)
    assert server.messages == []

    server.set_faults()  # the server recovers
    assert await run_day(path, D1) == (2, 0, 0, 2)  # resumed, not planned afresh
    assert sorted(papers_to(server, "ada@example.org")) == ["2511.00001", "2511.00002"]
    message_ids = {m.message["Message-ID"] for m in server.messages}
    assert len(message_ids) == 2

    assert await run_day(path, D1) == (0, 0, 0, 0)
    assert await run_day(path, D2) == (2, 0, 0, 0)
    assert sorted(papers_to(server, "ada@example.org")) == [
        "2511.00001",
        "2511.00002",
        "2511.00003",
    ]


async def test_a_refused_recipient_is_failed_and_the_papers_come_again_later(
    tmp_path: Path, db_url: str, listings: Path, smtp_server: Server
) -> None:
    server = smtp_server(rcpt_replies={"bob@example.org": "550 5.2.2 Mailbox full"}, times=1)
    path = config(tmp_path, db_url, listings, server)
    assert await run_day(path, D1) == (1, 1, 0, 0)
    assert papers_to(server, "bob@example.org") == []
    cfg = load(path)
    with Store(cfg.database) as store:
        bob = store.members.subscriber("bob@example.org")
        assert bob is not None and bob.id is not None
        (record,) = store.outbox.history(bob.id)
        assert record.status == "failed" and "Mailbox full" in (record.error or "")
    # the next day's listing still holds 2511.00002: bob gets it then; ada does not again
    assert await run_day(path, D2) == (2, 0, 0, 0)
    assert sorted(papers_to(server, "bob@example.org")) == ["2511.00002", "2511.00003"]
    assert sorted(papers_to(server, "ada@example.org")) == [
        "2511.00001",
        "2511.00002",
        "2511.00003",
    ]


async def test_the_run_logs_how_long_messages_waited_for_their_marks(
    tmp_path: Path, db_url: str, listings: Path, smtp_server: Server, caplog: Any
) -> None:
    server = smtp_server()
    path = config(tmp_path, db_url, listings, server)
    with caplog.at_level(logging.INFO, logger="digest.pipeline"):
        assert await run_day(path, D1) == (2, 0, 0, 0)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("marked ")]
    assert re.fullmatch(
        r"marked 2 sent in [12] commits; a message waited \d+\.\d ms for its mark", line
    )


async def test_an_unreachable_server_leaves_everything_pending(
    tmp_path: Path, db_url: str, listings: Path, smtp_server: Server
) -> None:
    server = smtp_server()
    path = config(tmp_path, db_url, listings, server)
    server.stop()
    # each connection worker defers the digest it held, then gives up (CLI: exit 1)
    assert await run_day(path, D1) == (0, 0, 2, 0)
    restarted = smtp_server()
    text = path.read_text("utf-8").replace(f"port = {server.port}", f"port = {restarted.port}")
    path.write_text(text, "utf-8")
    assert await run_day(path, D1) == (2, 0, 0, 2)
    assert len(restarted.messages) == 2
