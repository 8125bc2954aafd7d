"""Admin alerts to ``mail.admin``, never to a subscriber, through the same sender as the
digests; their state lives in the store's ``meta`` table, changed by compare-and-swap (of
two runs only one sends an alert).

- **Runs.** After ``mail.alert_after`` failed runs in a row (every source failing, or digests
  left pending...), one email naming each source's failures in a row; one more when a run
  succeeds again.
- **Sources.** While other sources work, a run is not failed: a source alone is alerted
  about once it has failed in ``mail.alert_after`` runs in a row (the same number, 3 by
  default: one knob for both; each ``digest run`` and each ``digest serve`` pass that
  fetches is a run), one email naming the sources newly failing that long; one more when
  such a source works again.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parseaddr

from digest.compose import build_message, list_id_for, make_message_id
from digest.config import Config
from digest.deliver import Outgoing, Sender, send_one
from digest.errors import DeliveryError
from digest.run.source_health import SourceHealth, sources_health
from digest.store import RunRecord, Store

log = logging.getLogger("digest.status")

#: The ``meta`` key holding "alerting" while the admin has been told runs fail.
ALERT_KEY = "alert_state"
#: The ``meta`` key holding the names (a JSON list) of the sources the admin was told fail.
SOURCE_ALERT_KEY = "source_alerts"


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
    """At the end of a run (its ``outcome`` and ``error``): after ``mail.alert_after`` failed
    runs in a row, tell ``mail.admin`` once; when a run succeeds again, once more; and
    between those, a source failing alone for ``mail.alert_after`` runs in a row (see the
    module). Returns True when an alert was sent; one that could not be delivered is tried
    again next run.
    """
    mail = config.mail
    if not mail.admin:
        return False
    found = sources_health(config, store, papers=False)  # the alerts do not count papers
    recent = store.run_log.runs(mail.alert_after + 20)
    latest = next((r for r in recent if r.outcome != "running"), None)
    state = store.run_log.get_meta(ALERT_KEY)
    sent = False
    if outcome == "failed":
        sent = await _runs_failing(config, store, sender, now, recent, state, error, found)
    elif state == "alerting":
        sent = await _runs_recovered(config, store, sender, now, latest, found)
    every_source = outcome == "failed" and latest is not None and latest.stage == "fetch"
    if not every_source and store.run_log.get_meta(ALERT_KEY) != "alerting":
        sent = await _sources_alert(config, store, sender, now, found) or sent
    return sent


async def _runs_failing(
    config: Config,
    store: Store,
    sender: Sender,
    now: datetime,
    recent: Sequence[RunRecord],
    state: str | None,
    error: str | None,
    found: Sequence[SourceHealth],
) -> bool:
    streak = failed_streak(recent)
    if state == "alerting" or len(streak) < config.mail.alert_after:
        return False
    if not store.run_log.swap_meta(ALERT_KEY, state, "alerting"):
        return False
    since = streak[-1].started_at
    subject = f"paper-digest: {len(streak)} runs failed in a row"
    text = (
        f"The last {len(streak)} runs of paper-digest failed, since {_when(since)}.\n"
        f"The latest, for {streak[0].day}, failed at the {streak[0].stage or 'run'} stage:\n"
        f"\n    {error or streak[0].error or 'unknown error'}\n\n"
        f"{source_counts(found)}"
        "`digest status` tells more. You will get one more email when a run succeeds.\n"
    )
    if not await _send_alert(config, sender, now, config.mail.admin or "", subject, text):
        store.run_log.swap_meta(ALERT_KEY, "alerting", "quiet")
        return False
    _told(store, [h.name for h in lagging(found, config.mail.alert_after)])
    return True


async def _runs_recovered(
    config: Config,
    store: Store,
    sender: Sender,
    now: datetime,
    latest: RunRecord | None,
    found: Sequence[SourceHealth],
) -> bool:
    if not store.run_log.swap_meta(ALERT_KEY, "alerting", "quiet"):
        return False
    day = latest.day if latest else ""
    outcome = latest.outcome if latest else "ok"
    subject = "paper-digest: runs succeed again"
    text = f"The run for {day} succeeded ({outcome}); paper-digest works again.\n"
    still = lagging(found, config.mail.alert_after)
    if still:
        text += "\nSome sources still fail (their papers wait until they work):\n\n"
        text += "".join(_failing_line(h) for h in still)
    if not await _send_alert(config, sender, now, config.mail.admin or "", subject, text):
        store.run_log.swap_meta(ALERT_KEY, "quiet", "alerting")
        return False
    _told(store, [h.name for h in still])
    return True


def lagging(found: Sequence[SourceHealth], runs: int) -> list[SourceHealth]:
    """The configured, enabled sources that failed in ``runs`` runs in a row or more."""
    return [h for h in found if h.status == "failing" and h.runs_failed >= runs]


def source_counts(found: Sequence[SourceHealth]) -> str:
    """Each enabled source's failures in a row, for an alert's text (empty for none)."""
    lines = []
    for h in found:
        if h.status == "failing":
            lines.append(_failing_line(h))
        elif h.status in ("ok", "unknown"):
            lines.append(f"    {h.name}: {'works' if h.status == 'ok' else 'not fetched yet'}\n")
    return "Sources:\n\n" + "".join(lines) + "\n" if lines else ""


def _failing_line(h: SourceHealth) -> str:
    error = " ".join((h.last_error or "unknown error").split())
    return (
        f"    {h.name}: failed in {h.runs_failed} run(s) in a row ({h.failures} fetch(es)),"
        f" last worked {_when(h.last_ok_at) if h.last_ok_at else 'never'}: {error}\n"
    )


def _told_names(raw: str | None) -> set[str]:
    try:
        names = json.loads(raw) if raw else []
    except ValueError:
        return set()
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def _told(store: Store, names: Sequence[str]) -> None:
    """Record that the admin now knows ``names`` fail (an alert about runs named them)."""
    raw = store.run_log.get_meta(SOURCE_ALERT_KEY)
    store.run_log.swap_meta(SOURCE_ALERT_KEY, raw, json.dumps(sorted(set(names))))


async def _sources_alert(
    config: Config, store: Store, sender: Sender, now: datetime, found: Sequence[SourceHealth]
) -> bool:
    """Tell the admin of the sources newly failing ``mail.alert_after`` runs in a row and of
    those they were told of that work again (one email); a source disabled or removed since
    is forgotten without one."""
    raw = store.run_log.get_meta(SOURCE_ALERT_KEY)
    told = _told_names(raw)
    failing = {h.name for h in found if h.status == "failing"}
    new = [h for h in lagging(found, config.mail.alert_after) if h.name not in told]
    back = sorted(told & {h.name for h in found if h.status == "ok"})
    keep = sorted((told & failing) | {h.name for h in new})
    if sorted(told) == keep:
        return False
    value = json.dumps(keep)
    if not store.run_log.swap_meta(SOURCE_ALERT_KEY, raw, value) or not (new or back):
        return False
    if new:
        names = ", ".join(h.name for h in new)
        subject = f"paper-digest: source {names} failing"
        text = (
            f"These sources failed in {config.mail.alert_after} or more runs in a row; the"
            " others work, so the digests go out with their papers, and a failed source's"
            " papers follow once it works again (dates up to 7 days back):\n\n"
            + "".join(_failing_line(h) for h in new)
        )
    else:
        subject = f"paper-digest: source {', '.join(back)} works again"
        text = ""
    text += "".join(f"\nSource {name} works again.\n" for name in back)
    text += "\n`digest sources` tells more.\n"
    if not await _send_alert(config, sender, now, config.mail.admin or "", subject, text):
        store.run_log.swap_meta(SOURCE_ALERT_KEY, value, raw or "[]")
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
