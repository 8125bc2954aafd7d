"""``digest prune [--dry-run]``: remove the history older than ``[history]`` keeps (what
proves a paper was sent, after ``keep_days``; papers and listings, after ``archive_days``),
as each ``digest run`` does at its end."""

from __future__ import annotations

import click

from digest.cli.shared import State, guard


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
@click.pass_obj
def prune(state: State, dry_run: bool) -> None:
    """Remove sent-state, papers and listings older than [history] keeps."""
    from digest.cli.progress import reporting
    from digest.run import Progress
    from digest.store.history import Cutoffs, History
    from digest.store.schema import utc_now

    cfg = state.config()
    keep, archive = cfg.history.keep_days, cfg.history.archive_days
    cutoffs = Cutoffs.at(utc_now(), keep, archive)
    with state.store() as store:
        history = History(store.engine)
        if dry_run:
            pruned = guard(lambda: history.prune(cutoffs, dry_run=True))
        else:
            with reporting(Progress("rows"), "prune") as progress:
                pruned = guard(lambda: history.prune(cutoffs, advance=progress.advance))
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {pruned.total:,} rows (digests sent over {keep} days ago,"
        f" papers and listings over {archive} days old){' (dry run)' if dry_run else ''}"
    )
    for line in pruned.lines():
        click.echo(f"  {line}")
