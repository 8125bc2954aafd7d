"""``digest status`` and ``digest schedule``: what the runs did and when the next digests go."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from digest.cli.shared import State, at, guard, shown, status_text

if TYPE_CHECKING:
    from digest.run import Status
    from digest.run.source_health import SourceHealth
    from digest.store import RunRecord


#: What ``digest status`` calls a run that failed at each stage (see RunRecord.stage).
FAILING = {"fetch": "fetch failing", "deliver": "delivery failing", "feeds": "feeds failing"}


@click.command()
@click.pass_obj
def schedule(state: State) -> None:
    """Print every active subscriber's next send time, in their zone and in UTC."""
    from digest.serve import next_sends

    cfg = state.config()
    now = datetime.now(UTC)
    with state.store() as store:
        guard(lambda: store.members.sync_config_subscribers(cfg.subscribers))  # as every pass does
        guard(lambda: store.likes.sync_config(cfg.subscribers))  # and their like lists
        rows = guard(lambda: next_sends(cfg, store, now))
        states = guard(store.members.state_counts)
    inactive = sum(n for state, n in states.items() if state not in ("active", "unscheduled"))
    if not rows:
        click.echo("no active subscribers")
    for sub, sched, when in rows:
        local = when.astimezone(sched.zone)
        late = "  (due now: catch-up)" if when <= now else ""
        click.echo(
            f"{shown(sub.email)}\t{local:%Y-%m-%d %H:%M %Z} ({shown(sched.timezone)})\t"
            f"{when:%Y-%m-%d %H:%M} UTC\t{shown(sched.describe())}{late}"
        )
    if inactive:
        click.echo(
            f"({inactive} subscriber(s) pending, paused, unsubscribed or suspended: no sends)"
        )


#: How ``digest status`` names the kinds of the bounce mailbox's messages.
MAILBOX_KINDS = (
    ("hard", "hard bounces"),
    ("soft", "soft bounces"),
    ("complaint", "complaints"),
    ("mailto", "unsubscribes"),
)


@click.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print what /admin shows as one JSON object (the README documents its schema).",
)
@click.pass_obj
def status(state: State, as_json: bool) -> None:
    """Show the last run, the delivery queue and suspended subscribers."""
    from digest.run import overview
    from digest.run import status as read_status

    if as_json:
        cfg = state.config()
        with state.store() as store:
            data = guard(lambda: overview(store, cfg))
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    cfg = state.config()
    with state.store() as store:
        st = guard(lambda: read_status(store, config=cfg, papers=False))  # not shown
    for line in status_lines(st):
        click.echo(line)
    if cfg.run.queue:  # workers on several machines: their heartbeats and the batches
        from digest.run.queue import queue_state

        for line in guard(lambda: queue_state(cfg.database)).lines(cfg.run.heartbeat_timeout):
            click.echo(line)


def source_lines(found: Sequence[SourceHealth]) -> list[str]:
    """``sources:`` with each enabled source's state in a word, then a line per failing
    source with its failures in a row and its last error."""
    if not found:
        return []
    words = []
    for h in found:
        if h.status in ("disabled", "removed"):
            continue
        word = h.status if h.status != "unknown" else "not fetched yet"
        if h.quiet:
            word = "quiet (0 papers" + (": weekend or holiday?)" if h.kind == "arxiv" else ")")
        elif h.status == "ok":
            word = f"ok ({h.last_count} papers)"
        words.append(f"{shown(h.name)} {word}")
    lines = ["sources:    " + ", ".join(words)] if words else []
    for h in found:
        if h.status == "failing":
            worked = f"last worked {at(h.last_ok_at)}" if h.last_ok_at else "never worked"
            lines.append(
                f"  {shown(h.name)}: failing, {worked} ({h.runs_failed} run(s),"
                f" {h.failures} fetch(es) in a row): {shown(one_line(h.last_error))}"
            )
    return lines


def one_line(error: str | None) -> str:
    """An error on one line (a source may answer with a page of text)."""
    return " ".join((error or "unknown error").split())


def running_line(r: RunRecord) -> str:
    """A run recorded as going: still running, or gone (its process died on this host)."""
    from digest.run.claims import gone

    if gone(r):
        return (
            f"gone:       run {r.id} for {r.day}, started {at(r.started_at)}: its process"
            f" ({r.pid} on {r.host}) ended without recording its end; the next run records"
            " it as failed"
        )
    return f"running:    since {at(r.started_at)} for {r.day} (run {r.id})"


def status_lines(st: Status) -> list[str]:
    """``digest status`` as lines of ``label: text``; see the README for the format."""
    lines = []
    last = st.last
    if last is None:
        lines.append("last run:   none recorded yet")
    else:
        lines.append(
            f"last run:   {at(last.started_at)} for {last.day}: {last.outcome}"
            f" (fetched {last.fetched}, sent {last.sent}, failed {last.failed},"
            f" deferred {last.deferred})"
        )
    lines += [running_line(r) for r in st.running]
    if st.failing:
        first, latest = st.failing[-1], st.failing[0]
        what = FAILING.get(latest.stage or "", "runs failing")
        lines.append(
            f"listing:    {what} since {at(first.started_at)}"
            f" ({len(st.failing)} failed run(s) in a row): {shown(latest.error or 'unknown error')}"
        )
    elif last is not None and last.outcome == "empty":
        # A quiet day (arXiv's weekend) is no failure; a failed source is named below.
        failing = [h for h in st.sources if h.status == "failing"]
        why = f"{len(failing)} source(s) failing" if failing else "weekend or holiday?"
        lines.append(f"listing:    listing empty ({why})")
    elif last is not None:
        lines.append(f"listing:    ok, {last.fetched} papers")
    lines += source_lines(st.sources)
    counts = st.deliveries
    lines.append(
        f"deliveries: pending {counts.get('pending', 0)}, sending {counts.get('sending', 0)},"
        f" failed {counts.get('failed', 0)}, sent {counts.get('sent', 0)}"
    )
    lines.append(f"suspended:  {len(st.suspended)}")
    for sub in st.suspended:
        lines.append(f"  {shown(sub.email)}  {status_text(sub)}")
    states = st.states or {}
    if states:
        order = ("active", "pending", "paused", "unsubscribed", "suspended")
        lines.append("subscribers: " + ", ".join(f"{name} {states.get(name, 0)}" for name in order))
    now = datetime.now(UTC)
    for when, count in st.upcoming:
        due = "  (due: goes at the next pass of digest serve)" if when <= now else ""
        lines.append(f"next send:  {at(when)} to {count} subscriber(s){due}")
    if states.get("unscheduled"):
        lines.append(
            f"next send:  {states['unscheduled']} active subscriber(s) not placed yet"
            " (digest serve places them at its next pass)"
        )
    if not st.upcoming and not states.get("unscheduled"):
        lines.append("next send:  none scheduled")
    if st.mailbox:
        counted = ", ".join(f"{name} {st.mailbox.get(kind, 0)}" for kind, name in MAILBOX_KINDS)
        lines.append(f"mailbox:    last {st.mailbox_days} days: {counted}")
    if st.alerting:
        lines.append("alert:      the admin was told runs are failing")
    return lines
