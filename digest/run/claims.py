"""Claims on pending digests: a run takes each one right before sending it, and re-queues
those held by runs that died (:func:`stale_claim` is the policy, the rest the I/O).

A delivery moves pending → sending → sent | failed. A run records the digests it plans
already claimed by itself (sending, with its id); a digest an earlier run left pending is
*claimed* right before it is handed to the sender (``store.outbox.claim``: one conditional UPDATE,
pending → sending with the run's id), so two runs resuming the same pending digests never
both send one. A run gives back what it claimed but did not hand over when it stops; a
claim left by a run that died (SIGKILL, power cut) is re-queued by the next run once
:func:`stale_claim` says that run is gone. The only duplicate window: a message the server
had accepted when its run died, before ``mark_sent`` recorded it; it is sent again, with the
same Message-ID. At most the messages in flight at that instant are affected: one per
connection (``smtp.concurrency``); claimed messages still queued were not sent, and go out
once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from digest.run.context import Context
from digest.store import Claim, RunRecord, Store
from digest.store.queue_state import queued_runs

log = logging.getLogger("digest.pipeline")


#: A claim by a run on another host (whose process cannot be checked) is taken back after
#: this long: far more than one message can spend queued and sent (attempts × timeouts).
CLAIM_LEASE = timedelta(hours=6)


Claimer = Callable[[str, str, str], bool]


def claimer(ctx: Context, run_id: int, clock: Callable[[], datetime]) -> Claimer:
    """``claim(delivery_id, to, message_id)``: take a pending digest for this run right
    before it is handed to the sender; False (and a log line) when another run has it."""

    def claim(delivery_id: str, to: str, message_id: str) -> bool:
        if ctx.store.outbox.claim(delivery_id, run_id, clock()):
            return True
        log.info("skipped to=%s message_id=%s: claimed by another run", to, message_id)
        return False

    return claim


HOST = socket.gethostname()


def stale_claim(
    claim: Claim,
    now: datetime,
    host: str,
    alive: Callable[[int], bool],
    lease: timedelta = CLAIM_LEASE,
) -> bool:
    """Whether a delivery stuck in ``sending`` may be re-queued: the run holding it is gone.

    Gone means: that run recorded its end (it stops by giving back its claims, so this one
    escaped), or no such run is recorded, or it ran on ``host`` and its process is not
    ``alive`` (killed), or the claim is older than ``lease`` (a run on another host, whose
    process cannot be checked, or a pid reused since).
    """
    if claim.run_host is None or claim.run_finished:
        return True
    if claim.run_host == host and claim.run_pid is not None and not alive(claim.run_pid):
        return True
    return claim.claimed_at is None or now - claim.claimed_at > lease


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def gone(run: RunRecord, host: str = HOST) -> bool:
    """Whether ``run`` is recorded as going but ran on ``host`` in a process that is gone
    (SIGKILL, out of memory, a reboot): it can never record its end itself."""
    return (
        run.finished_at is None
        and run.host == host
        and run.pid is not None
        and run.pid != os.getpid()
        and not pid_alive(run.pid)
    )


def end_gone_runs(
    store: Store, now: datetime, held: Collection[int], *, host: str = HOST
) -> list[int]:
    """Record the end of the runs of ``host`` whose process died before recording it
    (outcome ``failed``, the error saying so), but for those ``held`` (queued runs whose
    batches the workers still hold: theirs is recorded when those end). Runs of other
    hosts are left: their processes cannot be looked at from here. Returns the runs ended."""
    ended = []
    for run_id, pid in store.run_log.unfinished(host):
        if run_id in held or pid == os.getpid() or pid_alive(pid):
            continue
        error = (
            f"the run's process ({pid} on {host}) ended before recording its end: killed,"
            " out of memory, or the machine stopped; its unsent digests went to the next run"
        )
        if store.run_log.end_gone(run_id, now, error):
            log.warning("run %s ended without a record (process %s is gone)", run_id, pid)
            ended.append(run_id)
    return ended


def requeue_stale(ctx: Context, *, host: str = HOST) -> int:
    """Put back to pending the deliveries claimed by runs that died (and record those
    runs' end, see :func:`end_gone_runs`); returns how many. The claims of a queued run
    whose batches are still in the queue are the workers': kept."""
    count = 0
    held = queued_runs(ctx.store.engine)
    end_gone_runs(ctx.store, ctx.now, held, host=host)
    for claim in ctx.store.outbox.claims():
        if claim.run_id in held:
            continue
        if stale_claim(claim, ctx.now, host, pid_alive) and ctx.store.outbox.requeue(claim):
            log.warning(
                "requeued delivery=%s claimed by run %s, which is gone",
                claim.delivery_id,
                claim.run_id,
            )
            count += 1
    return count
