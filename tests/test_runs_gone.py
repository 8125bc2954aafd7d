"""A run whose process died without recording its end (SIGKILL, out of memory, a reboot) is
ended by the next run on that host, and `digest status` says so meanwhile, instead of
showing it "running" for ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from digest.run.claims import HOST, end_gone_runs, gone
from digest.store import Store
from tests.support.site import digest, write_site

DAY = date(2026, 11, 16)
NOW = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_only_this_hosts_dead_runs_are_ended(db_url: str) -> None:
    with Store(db_url) as store:
        dead = store.run_log.start_run(DAY, NOW, HOST, dead_pid())
        alive = store.run_log.start_run(DAY, NOW, HOST, os.getppid())  # pytest's parent
        elsewhere = store.run_log.start_run(DAY, NOW, "another-host", dead_pid())
        held = store.run_log.start_run(DAY, NOW, HOST, dead_pid())  # its batches are queued
        later = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
        assert end_gone_runs(store, later, {held}) == [dead]
        assert end_gone_runs(store, later, {held}) == []  # once
        by_id = {r.id: r for r in store.run_log.runs()}
        assert by_id[dead].outcome == "failed" and by_id[dead].finished_at == later
        assert "ended before recording its end" in (by_id[dead].error or "")
        assert {by_id[i].outcome for i in (alive, elsewhere, held)} == {"running"}
        assert [gone(by_id[i]) for i in (alive, elsewhere, held)] == [False, False, True]


def test_status_names_a_dead_run_and_the_next_run_ends_it(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    assert digest(site, "db", "upgrade").exit_code == 0
    url = f"sqlite:///{site / 'digest.db'}"
    with Store(url) as store:
        killed = store.run_log.start_run(DAY, NOW, HOST, pid := dead_pid())
    shown = digest(site, "status")
    assert shown.exit_code == 0, shown.output
    assert f"gone:       run {killed} for {DAY}" in shown.output
    assert f"its process ({pid} on {HOST}) ended without recording its end" in shown.output
    assert "running:" not in shown.output
    as_json = json.loads(digest(site, "status", "--json").output)
    assert as_json["running"] == [
        {**as_json["running"][0], "id": killed, "host": HOST, "pid": pid, "gone": True}
    ]

    ran = digest(site, "run", "--date", DAY.isoformat())
    assert ran.exit_code == 0, ran.output
    with Store(url) as store:
        runs = {r.id: r for r in store.run_log.runs()}
    assert runs[killed].outcome == "failed"
    assert all(r.outcome != "running" for r in runs.values())
    after = digest(site, "status")
    assert "gone:" not in after.output and "running:" not in after.output
    assert json.loads(digest(site, "status", "--json").output)["running"] == []
