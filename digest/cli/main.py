"""The ``digest`` command: the root group, the list of its commands and the entry point.

Each command group lives in a module of its own (``run``, ``serve``, ``status``,
``sources``, ``mailbox``, ``subscribers``, ``config``, ``db``, ``demo``, ``worker``) built on
:mod:`digest.cli.shared`; :data:`COMMANDS` adds them to the root group. Exit codes: 0
done; 1 the run failed (message on stderr); 2 usage or config error.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Sequence

import click

from digest import GC_THRESHOLDS, __version__
from digest.cli.config import config_group
from digest.cli.db import db
from digest.cli.demo import demo
from digest.cli.library import LIBRARY_COMMANDS
from digest.cli.mailbox import mailbox
from digest.cli.prune import prune
from digest.cli.run import feed, preview, run, send
from digest.cli.serve import serve
from digest.cli.shared import ShownFormatter, State
from digest.cli.sources import sources
from digest.cli.status import schedule, status
from digest.cli.subscribers import subscribers
from digest.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Config file (default: $DIGEST_CONFIG, else ./config.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """paper-digest: the day's trending papers, by email and feed, to those who asked."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ShownFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    ctx.obj = State(config_path)


#: Every command of ``digest``; a new command group is imported above and added here.
COMMANDS: tuple[click.Command, ...] = (
    run,
    send,
    serve,
    worker,
    schedule,
    preview,
    feed,
    status,
    sources,
    mailbox,
    subscribers,
    config_group,
    db,
    prune,
    demo,
)
for command in COMMANDS:
    cli.add_command(command)
for command in LIBRARY_COMMANDS:  # digest subscribers like|dislike|unlike|library
    subscribers.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``digest`` command."""
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="digest", standalone_mode=True
        )
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
