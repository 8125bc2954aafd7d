"""``digest mailbox``: read the bounce mailbox once and say what it did."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from digest.cli.shared import State, guard, shown

if TYPE_CHECKING:
    from digest.run.mailbox import MailboxReport


@click.command()
@click.pass_obj
def mailbox(state: State) -> None:
    """Read the bounce mailbox once: bounces, complaints and mailto unsubscribes."""
    from digest.run.mailbox import mailbox_secret, open_mailbox, read_mailbox

    cfg = state.config()
    box = guard(lambda: open_mailbox(cfg))
    with state.store() as store:
        secret = guard(lambda: mailbox_secret(store))
        report = guard(lambda: read_mailbox(cfg, store, secret, box=box))
    click.echo(f"mailbox {shown(box.name)}: {report.processed} processed")
    for line in report_lines(report):
        click.echo(line)


def report_lines(report: MailboxReport) -> list[str]:
    """What a pass did, one ``label: count`` line each; who it suspended or unsubscribed."""
    left = " (left in the mailbox)" if report.unmatched else ""
    lines = [
        f"  hard bounces:  {report.hard}",
        f"  soft bounces:  {report.soft}",
        f"  complaints:    {report.complaints}",
        f"  unsubscribes:  {report.unsubscribes}",
        f"  unmatched:     {report.unmatched}{left}",
        f"  already seen:  {report.seen}",
    ]
    lines += [f"  suspended:     {shown(email)} (hard bounces)" for email in report.suspended]
    lines += [f"  unsubscribed:  {shown(email)}" for email in report.unsubscribed]
    return lines
