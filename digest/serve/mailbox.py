"""The bounce mailbox in ``digest serve``: a scheduled job reads it every
``mailbox.every_minutes`` (as ``digest mailbox`` does once), in a thread, one pass at a time.
A pass that fails (server unreachable, login refused) is logged and tried at the next
interval; it never stops the service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from digest.errors import DigestError
from digest.run import Context
from digest.run.mailbox import MailboxReport, read_mailbox

log = logging.getLogger("digest.serve.mailbox")


class MailboxJob:
    """Reads the mailbox of the context ``make_context(now)`` gives, when it has one."""

    def __init__(self, make_context: Callable[[datetime], Context]) -> None:
        self.make_context = make_context
        self.last_error: str | None = None
        self.last_report: MailboxReport | None = None
        self._busy = asyncio.Lock()

    def add_to(self, scheduler: Any, config_minutes: int) -> None:
        """Add the job to an APScheduler ``scheduler``: every ``config_minutes``, the first
        pass one interval after the start."""
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler.add_job(
            self.run,
            IntervalTrigger(minutes=config_minutes, timezone=UTC),
            id="mailbox",
            max_instances=1,
            coalesce=True,
        )

    async def run(self, now: datetime | None = None) -> MailboxReport | None:
        """One pass (skipped while another runs); None when there is no mailbox or it failed."""
        if self._busy.locked():
            return None
        async with self._busy:
            ctx = self.make_context(now or datetime.now(UTC))
            if not ctx.config.mailbox.kind:
                return None
            try:
                report = await asyncio.to_thread(read_mailbox, ctx.config, ctx.store, ctx.secret)
            except DigestError as exc:
                self.last_error = str(exc)
                log.error("mailbox pass failed: %s", exc)
                return None
            except Exception as exc:  # a bug: logged, the service goes on
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("mailbox pass crashed")
                return None
            self.last_error, self.last_report = None, report
            return report


def add_mailbox_job(
    scheduler: Any, make_context: Callable[[datetime], Context]
) -> MailboxJob | None:
    """The mailbox job, added to ``scheduler`` when the configuration has a mailbox."""
    config = make_context(datetime.now(UTC)).config
    if not config.mailbox.kind:
        return None
    job = MailboxJob(make_context)
    job.add_to(scheduler, config.mailbox.every_minutes)
    return job
