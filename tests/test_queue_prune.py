"""A queued run's rows of ``meta`` (its tally, the digests each batch took) go with the
history: pruned at the end of a run once the run is older than ``keep_days`` (or no longer
recorded), kept while it is newer. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.store import Store
from digest.store.history import prune_after_run
from digest.store.queue_state import drop_run_rows, note_taken, prune_run_rows


def test_queued_runs_rows_are_pruned_with_the_history(db_url: str) -> None:
    now = datetime(2026, 11, 18, 6, tzinfo=UTC)
    with Store(db_url) as store:
        old = store.run_log.start_run(now.date(), now - timedelta(days=200), "h", 1)
        new = store.run_log.start_run(now.date(), now - timedelta(days=2), "h", 2)
        gone = new + 50  # a run no longer recorded
        for run in (old, new, gone):
            store.run_log.swap_meta(f"queue.run.{run}", None, '{"sent": 1}')
            note_taken(store.engine, run, 7, ["a" * 32, "b" * 32])
            note_taken(store.engine, run, 7, ["b" * 32, "c" * 32])  # a retry adds to its row
        store.run_log.swap_meta("queue.runner", None, "not a run's")
        assert store.run_log.get_meta(f"queue.run.{new}.job.7") == (
            f'["{"a" * 32}", "{"b" * 32}", "{"c" * 32}"]'
        )

        prune_after_run(store.engine, 120, 365, now)

        for run in (old, gone):
            assert store.run_log.get_meta(f"queue.run.{run}") is None
            assert store.run_log.get_meta(f"queue.run.{run}.job.7") is None
        assert store.run_log.get_meta(f"queue.run.{new}") == '{"sent": 1}'
        assert store.run_log.get_meta(f"queue.run.{new}.job.7") is not None
        assert store.run_log.get_meta("queue.runner") == "not a run's"
        assert prune_run_rows(store.engine, now - timedelta(days=120)) == 0  # nothing left
        assert drop_run_rows(store.engine, [new]) == 2
