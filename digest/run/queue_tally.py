"""What a queued run's batches did, and what ``digest status`` says of the queue.

Each batch adds its report to the run's tally (a row of ``meta``) as it ends: the run's
live progress. A batch whose worker was killed never ends, so the tally alone would miss the
messages that worker sent; the run's final counts are therefore read from the digests
themselves: each batch notes the digests it took (planned or resumed, before sending any:
:func:`~digest.store.queue_state.note_taken`), and the run counts them by status at its
end (:func:`final_counts`): sent, failed, and pending again (deferred).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import psycopg

from digest.errors import StateError
from digest.run.queue_jobs import TASK, conninfo
from digest.run.report import RunReport
from digest.store import Store
from digest.store.queue_state import RUN_PREFIX, taken_counts


@dataclass
class Tally:
    """What a run's batches did, added up in ``meta`` as each ends."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    resumed: int = 0
    batches: int = 0
    suspended: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_tally(store: Store, run_id: int) -> Tally:
    """The run's tally so far (empty before any batch ended)."""
    text = store.run_log.get_meta(_tally_key(run_id))
    return Tally(**json.loads(text)) if text else Tally()


def add_tally(store: Store, run_id: int, report: RunReport, error: str | None) -> None:
    """Add one batch's report (and error) to the run's tally (a compare-and-swap loop)."""
    key = _tally_key(run_id)
    while True:
        old = store.run_log.get_meta(key)
        tally = Tally(**json.loads(old)) if old else Tally()
        tally.sent += report.sent
        tally.failed += report.failed
        tally.deferred += report.deferred
        tally.resumed += report.resumed
        tally.batches += 1
        tally.suspended += report.suspended
        tally.errors += [error] if error else []
        if store.run_log.swap_meta(key, old, json.dumps(asdict(tally))):
            return


def add_up(report: RunReport, tally: Tally) -> Tally:
    """The run's report holds what its batches did so far (``report`` counts nothing else)."""
    report.sent, report.failed, report.deferred = tally.sent, tally.failed, tally.deferred
    report.resumed, report.suspended = tally.resumed, list(tally.suspended)
    return tally


def final_counts(store: Store, report: RunReport, run_id: int) -> Tally:
    """The run's report once its batches ended: sent, failed and deferred counted from the
    digests its batches took (right even when a worker was killed mid-batch), the rest
    from the tally."""
    tally = add_up(report, read_tally(store, run_id))
    counts = taken_counts(store.engine, run_id)
    report.sent, report.failed = counts.get("sent", 0), counts.get("failed", 0)
    report.deferred = counts.get("pending", 0)
    return tally


def _tally_key(run_id: int) -> str:
    return f"{RUN_PREFIX}{run_id}"


@dataclass(frozen=True)
class QueueState:
    """What ``digest status`` says of the queue: each live worker's seconds since its last
    heartbeat, and the batches of the latest queued run by status (procrastinate's: todo,
    doing, succeeded, failed...)."""

    heartbeats: list[float]
    run: int | None
    batches: dict[str, int]
    #: The latest queued run's digests by status, as long as its batches' rows are kept
    #: (a run that did not wait for them; a waiting run's record holds its counts).
    digests: dict[str, int] = field(default_factory=dict)

    def lines(self, timeout: float) -> list[str]:
        """``workers:`` and ``batches:`` lines of ``digest status``."""
        alive = [h for h in self.heartbeats if h <= timeout]
        silent = len(self.heartbeats) - len(alive)
        beats = ", ".join(f"{h:.0f} s" for h in sorted(alive))
        text = f"{len(alive)} (heartbeats {beats} ago)" if alive else "0 (none running)"
        if silent:
            text += f"; {silent} silent past {timeout:g} s (taken for dead)"
        counts = self.batches
        batches = (
            f"pending {counts.get('todo', 0)}, running {counts.get('doing', 0)},"
            f" done {counts.get('succeeded', 0)}, failed {counts.get('failed', 0)}"
            f" (run {self.run}{self._digests()})"
            if self.run is not None
            else "none queued yet"
        )
        return [f"workers:    {text}", f"batches:    {batches}"]

    def _digests(self) -> str:
        if not self.digests:
            return ""
        d = self.digests
        to_send = d.get("pending", 0) + d.get("sending", 0)
        return f"; digests sent {d.get('sent', 0)}, failed {d.get('failed', 0)}, to send {to_send}"


def queue_state(database: str) -> QueueState:
    """Read the workers' heartbeats and the latest queued run's batches; raises
    :class:`StateError` when the database does not answer."""
    try:
        return _queue_state(database)
    except psycopg.Error as exc:
        raise StateError(f"cannot read the queue: {exc}") from exc


def _queue_state(database: str) -> QueueState:
    with psycopg.connect(conninfo(database), connect_timeout=10) as conn:
        found = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        if found is None or not found[0]:
            return QueueState([], None, {})
        beats = conn.execute(
            "SELECT extract(epoch FROM now() - last_heartbeat) FROM procrastinate_workers"
        ).fetchall()
        latest = conn.execute(
            "SELECT max((args->>'run')::int) FROM procrastinate_jobs WHERE task_name = %s",
            (TASK,),
        ).fetchone()
        run = latest[0] if latest else None
        rows = conn.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs"
            " WHERE task_name = %s AND (args->>'run')::int = %s GROUP BY status",
            (TASK, run),
        ).fetchall()
        taken = conn.execute(  # the digests its batches took, by status
            "SELECT status, count(*) FROM deliveries WHERE id IN (SELECT"
            " jsonb_array_elements_text(value::jsonb) FROM meta WHERE key LIKE %s)"
            " GROUP BY status",
            (f"{RUN_PREFIX}{run}.job.%",),
        ).fetchall()
    return QueueState(
        [float(b[0]) for b in beats],
        run,
        {st: int(n) for st, n in rows},
        {str(st): int(n) for st, n in taken},
    )
