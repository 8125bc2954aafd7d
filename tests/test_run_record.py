"""``recorded_run``, the record in ``runs`` that ``digest run`` and each scheduled pass share:
the stage and error a run stopped with, a feed failure told from a delivery failure, and an
interruption recorded without alerting the admin. A real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from digest.config import load
from digest.errors import FeedError, SourceError
from digest.run import RunReport, make_context, recorded_run
from digest.store import Store
from tests.support.listings import write_days
from tests.support.site import write_config

DAY = date(2026, 11, 16)
NOW = datetime(2026, 11, 16, 7, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    listings = write_days(tmp_path / "listings", {})
    mail = f'outbox_dir = "{tmp_path / "outbox"}"\nadmin = "ops@example.org"\nalert_after = 1'
    config = load(
        write_config(tmp_path, f"sqlite:///{tmp_path / 'digest.db'}", listings, mail=mail)
    )
    return Store(config.database)


async def record(tmp_path: Path, store: Store, error: BaseException | None) -> RunReport:
    """A run that fetched 2 papers, then stopped delivering with ``error`` (None: ended)."""
    config = load(tmp_path / "config.toml")
    report = RunReport(day=DAY)
    raises: AbstractContextManager[object] = (
        pytest.raises(type(error)) if error else contextlib.nullcontext()
    )
    with store, raises:
        async with recorded_run(make_context(config, store, now=NOW), report, DAY) as run:
            assert report.run_id == run.run_id
            report.fetched = 2
            run.stage = "deliver"
            if error is not None:
                raise error
    return report


def alerts(tmp_path: Path) -> list[Path]:
    """The alerts written to the outbox (the only mail these runs send)."""
    return sorted((tmp_path / "outbox").glob("*.eml"))


@pytest.mark.parametrize(
    ("error", "outcome", "stage", "text", "alerted"),
    [
        (None, "ok", None, None, False),
        (SourceError("listing", "502 Bad Gateway"), "failed", "deliver", None, True),
        (FeedError("public", "Permission denied"), "failed", "feeds", None, True),
        (asyncio.CancelledError(), "failed", "deliver", "interrupted", False),
        (KeyboardInterrupt(), "failed", "deliver", "interrupted", False),
    ],
)
async def test_a_run_is_recorded_with_where_and_why_it_stopped(
    tmp_path: Path,
    store: Store,
    error: BaseException | None,
    outcome: str,
    stage: str | None,
    text: str | None,
    alerted: bool,
) -> None:
    report = await record(tmp_path, store, error)
    with Store(f"sqlite:///{tmp_path / 'digest.db'}") as again:
        (row,) = again.run_log.runs()
    assert row.id == report.run_id and row.day == DAY and row.started_at == NOW
    assert (row.outcome, row.stage, row.fetched) == (outcome, stage, 2)
    assert row.finished_at is not None and row.finished_at >= NOW
    if error is not None:
        assert row.error == (text or str(error))
    assert bool(alerts(tmp_path)) == alerted
