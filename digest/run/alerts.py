"""Admin alerts: one email to ``mail.admin`` after ``mail.alert_after`` failed runs in a row,
one more when a run succeeds again; never to a subscriber.

They go through the same sender as the digests; the state lives in the store's ``meta``
table, changed by compare-and-swap.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parseaddr

from digest.compose import build_message, list_id_for, make_message_id
from digest.config import Config
from digest.deliver import Outgoing, Sender, send_one
from digest.errors import DeliveryError
from digest.store import RunRecord, Store

log = logging.getLogger("digest.status")

#: The ``meta`` key holding "alerting" while the admin has been told runs fail.
ALERT_KEY = "alert_state"


def failed_streak(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """The failed runs in a row at the head of ``runs`` (newest first); runs still going
    (another process's) are passed over."""
    streak = []
    for r in runs:
        if r.outcome == "running":
            continue
        if r.outcome != "failed":
            break
        streak.append(r)
    return streak


async def alert_admin(
    config: Config, store: Store, sender: Sender, now: datetime, outcome: str, error: str | None
) -> bool:
    """After ``mail.alert_after`` failed runs in a row, tell ``mail.admin`` once; when a run
    succeeds again, once more. Returns True when an alert was sent.

    The state ("alerting") lives in ``meta``, changed by compare-and-swap so that two runs
    never both send it; an alert the sender could not deliver is tried again next run.
    """
    mail = config.mail
    if not mail.admin:
        return False
    state = store.run_log.get_meta(ALERT_KEY)
    if outcome == "failed":
        streak = failed_streak(store.run_log.runs(mail.alert_after + 20))
        if state == "alerting" or len(streak) < mail.alert_after:
            return False
        if not store.run_log.swap_meta(ALERT_KEY, state, "alerting"):
            return False
        since = streak[-1].started_at
        subject = f"paper-digest: {len(streak)} runs failed in a row"
        text = (
            f"The last {len(streak)} runs of paper-digest failed, since {_when(since)}.\n"
            f"The latest, for {streak[0].day}, failed at the {streak[0].stage or 'run'} stage:\n"
            f"\n    {error or streak[0].error or 'unknown error'}\n\n"
            "`digest status` tells more. You will get one more email when a run succeeds.\n"
        )
        if not await _send_alert(config, sender, now, mail.admin, subject, text):
            store.run_log.swap_meta(ALERT_KEY, "alerting", "quiet")
            return False
        return True
    if state != "alerting" or not store.run_log.swap_meta(ALERT_KEY, "alerting", "quiet"):
        return False
    last = store.run_log.runs(1)
    day = last[0].day if last else ""
    subject = "paper-digest: runs succeed again"
    text = f"The run for {day} succeeded ({outcome}); paper-digest works again.\n"
    if not await _send_alert(config, sender, now, mail.admin, subject, text):
        store.run_log.swap_meta(ALERT_KEY, "quiet", "alerting")
        return False
    return True


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def build_alert(
    config: Config, now: datetime, to: str, subject: str, text: str, message_id: str
) -> bytes:
    """An operator alert: plain text, and the same text escaped as minimal HTML."""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    cfg = config
    return build_message(
        sender=cfg.mail.sender,
        to=to,
        to_name=None,
        subject=subject,
        text=text,
        html=f"<!DOCTYPE html><html><body>{body}</body></html>",
        message_id=message_id,
        date=now,
        list_id=cfg.mail.list_id or list_id_for(cfg.mail.sender),
        unsubscribe_url=cfg.base_url,
    )


async def _send_alert(
    config: Config, sender: Sender, now: datetime, to: str, subject: str, text: str
) -> bool:
    message_id = make_message_id(config.mail.sender)
    try:
        data = build_alert(config, now, to, subject, text, message_id)
        outcome = await send_one(
            sender, Outgoing("alert", parseaddr(config.mail.sender)[1], (to,), data, message_id)
        )
    except DeliveryError as exc:
        log.error("alert not sent to=%s message_id=%s error=%s", to, message_id, exc)
        return False
    if outcome is None or not outcome.ok:
        error = outcome.error if outcome else "no outcome"
        log.error("alert not sent to=%s message_id=%s error=%s", to, message_id, error)
        return False
    log.warning("alert sent to=%s message_id=%s subject=%s", to, message_id, subject)
    return True
