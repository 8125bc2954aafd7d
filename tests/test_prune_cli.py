"""``digest prune [--dry-run]`` through the command line, on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from digest.cli.main import cli
from digest.models import Listing, Paper, Subscriber
from digest.store import PlannedDelivery, Store, new_delivery_id


def old_site(tmp_path: Path) -> tuple[Path, str]:
    """A config keeping 30 days of sent-state and a database holding one digest sent 45
    days ago, one pending since then, and a listing of 400 days ago."""
    db = f"sqlite:///{tmp_path / 'digest.db'}"
    config = tmp_path / "config.toml"
    config.write_text(f'database = "{db}"\n[history]\nkeep_days = 30\n', encoding="utf-8")
    now = datetime.now(UTC)
    sent_at, ancient = now - timedelta(days=45), now - timedelta(days=400)
    with Store(db) as store:
        store.papers.save_listing(
            Listing(date=ancient.date(), papers=(Paper(key="2401.00001", title="Ünïcode"),)),
            ancient,
        )
        papers = tuple(Paper(key=f"2611.0000{i}", title=f"P{i}") for i in (1, 2))
        store.papers.save_listing(Listing(date=sent_at.date(), papers=papers), sent_at)
        sub = store.members.add_subscriber(Subscriber(email="ada@example.org"))
        assert sub.id is not None
        plans = [
            PlannedDelivery(sub.id, sent_at.date(), (k,), 1, new_delivery_id(), f"<{k}@x>")
            for k in ("2611.00001", "2611.00002")
        ]
        assert store.outbox.record_pending(plans, sent_at) == plans
        store.outbox.mark_sent(plans[0].id, sent_at)
    return config, db


def counts(db: str) -> dict[str, int]:
    with Store(db) as store:
        return store.outbox.delivery_counts()


def test_dry_run_prints_what_would_go_and_changes_nothing(tmp_path: Path) -> None:
    config, db = old_site(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "prune", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would remove" in result.output and "(dry run)" in result.output
    assert "deliveries: 1\n" in result.output
    assert "listings: 1\n" in result.output and "papers: 1\n" in result.output
    assert counts(db) == {"sent": 1, "pending": 1}


def test_prune_removes_old_sent_state_and_keeps_the_pending_digest(tmp_path: Path) -> None:
    config, db = old_site(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "prune"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("removed ")
    assert "deliveries: 1\n" in result.output and "papers: 1\n" in result.output
    assert counts(db) == {"pending": 1}
    with Store(db) as store:
        (pending,) = store.outbox.pending()
        assert pending.paper_keys == ("2611.00002",)
    again = CliRunner().invoke(cli, ["--config", str(config), "prune"])
    assert again.exit_code == 0 and "removed 0 rows" in again.output
